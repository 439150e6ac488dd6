package io.digitforge.bulk;

import java.io.IOException;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.cassandra.config.DatabaseDescriptor;
import org.apache.cassandra.config.EncryptionOptions;
import org.apache.cassandra.io.util.File;
import org.apache.cassandra.streaming.ProgressInfo;
import org.apache.cassandra.streaming.SessionInfo;
import org.apache.cassandra.streaming.StreamEvent;
import org.apache.cassandra.streaming.StreamEventHandler;
import org.apache.cassandra.streaming.StreamException;
import org.apache.cassandra.streaming.StreamManager;
import org.apache.cassandra.streaming.StreamResultFuture;
import org.apache.cassandra.streaming.StreamState;
import org.apache.cassandra.tools.BulkLoader;
import org.apache.cassandra.tools.LoaderOptions;

/**
 * One folder of SSTables ({@code .../<keyspace>/<table>/}) -> every replica of the rows it holds, through
 * Cassandra's own bulk loader ({@code BulkLoader.load}, what {@code sstableloader} runs): it reads the ring and
 * the table's schema from an initial host over the native protocol, then streams each replica its part of
 * the files over the storage (internode) port.
 *
 * <p>Loaded only inside {@link CassandraClassLoader}, like {@link SSTableWriterBridge}. Spark's side
 * ({@link SparkSSTableStreamer}) calls {@link #stream} by reflection with JDK types only, and gets JDK types
 * back: a map replica -> {files, bytes} sent, or an {@link IOException} whose message says which host failed
 * and how (no Cassandra class in it, so it crosses back to Spark's class loader and to the driver intact).
 */
public final class SSTableStreamBridge {
    /** The stream each thread's BulkLoader.load started (the loader registers it on the calling thread), with
     *  its tally of what was sent. */
    private static final ThreadLocal<Tally> STARTED = new ThreadLocal<>();
    private static boolean listening;

    private SSTableStreamBridge() {}

    /**
     * @param folder  the SSTables' folder; its last two names are the keyspace and the table
     * @param target  StreamTarget.toMap(): hosts (comma-separated), nativePort, storagePort, connectionsPerHost,
     *                throttleMebibytes (0: none), and optional username, password, truststore,
     *                truststorePassword, keystore, keystorePassword
     * @return replica ("address:storagePort") -> {files sent, bytes sent}
     */
    public static Map<String, long[]> stream(String folder, Map<String, String> target) throws IOException {
        String hosts = target.get("hosts");
        java.io.File dir = new java.io.File(folder);
        if (!dir.isDirectory()) throw new IOException(folder + ": no such folder of SSTables");
        String table = dir.getParentFile().getName() + "." + dir.getName();
        String[] data = dir.list((d, name) -> name.endsWith("-Data.db"));
        int sstables = data == null ? 0 : data.length;

        DatabaseDescriptor.clientInitialization(false);  // client mode (as the writer); before StreamManager starts
        listen();
        LoaderOptions options = options(folder, target);
        STARTED.remove();
        try {
            BulkLoader.load(options);
            Tally started = STARTED.get();
            Map<String, long[]> sent = started == null ? new LinkedHashMap<>() : started.sent();
            long files = sent.values().stream().mapToLong(v -> v[0]).sum();
            if (sstables > 0 && files == 0) {
                throw new IOException(String.format("%s: %d SSTables of %s, none streamed: the cluster at %s has no "
                        + "replica for them (does the table %s exist there?)", table, sstables, folder, hosts, table));
            }
            return sent;
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(String.format("%s: streaming %s (initial hosts %s, native port %s, storage port %s) "
                            + "failed: %s", table, folder, hosts, target.get("nativePort"), target.get("storagePort"),
                    describe(e, STARTED.get(), target.get("storagePort"))));
        } finally {
            STARTED.remove();
        }
    }

    /** Once per class loader: note on the calling thread the stream BulkLoader.load starts there. */
    private static synchronized void listen() {
        if (listening) return;
        StreamManager.instance.addListener(new StreamManager.StreamListener() {
            @Override
            public void onRegister(StreamResultFuture result) {
                Tally tally = new Tally(result);
                result.addEventListener(tally);  // before its sessions start: it sees every one prepared
                STARTED.set(tally);
            }
        });
        listening = true;
    }

    /**
     * What one stream sent, per replica, from its events, as BulkLoader's own progress display counts it: the
     * stream's final state no longer lists the files its sessions sent.
     */
    private static final class Tally implements StreamEventHandler {
        final StreamResultFuture future;
        private final List<SessionInfo> sessions = new ArrayList<>();

        Tally(StreamResultFuture future) {
            this.future = future;
        }

        @Override
        public synchronized void handleStreamEvent(StreamEvent event) {
            if (event.eventType == StreamEvent.Type.STREAM_PREPARED) {
                sessions.add(((StreamEvent.SessionPreparedEvent) event).session);
            } else if (event.eventType == StreamEvent.Type.FILE_PROGRESS) {
                ProgressInfo progress = ((StreamEvent.ProgressEvent) event).progress;
                for (SessionInfo s : sessions) {
                    if (s.peer.equals(progress.peer) && s.sessionIndex == progress.sessionIndex) s.updateProgress(progress);
                }
            }
        }

        @Override
        public void onSuccess(StreamState state) {}

        @Override
        public void onFailure(Throwable t) {}

        synchronized Map<String, long[]> sent() {
            Map<String, long[]> sent = new LinkedHashMap<>();
            for (SessionInfo s : sessions) {
                long[] v = sent.computeIfAbsent(s.peer.getAddress().getHostAddress() + ":" + s.peer.getPort(),
                        k -> new long[2]);
                v[0] += s.getTotalFilesSent();
                v[1] += s.getTotalSizeSent();
            }
            return sent;
        }
    }

    /** Which replicas failed and why (from the stream's final state), else the chain of causes. */
    private static String describe(Throwable e, Tally tally, String storagePort) {
        StreamResultFuture started = tally == null ? null : tally.future;
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof StreamException) return failedSessions(((StreamException) t).finalState, storagePort);
        }
        if (started != null && started.isDone()) {
            try {
                started.get();
            } catch (ExecutionException x) {
                if (x.getCause() instanceof StreamException) {
                    return failedSessions(((StreamException) x.getCause()).finalState, storagePort);
                }
            } catch (InterruptedException x) {
                Thread.currentThread().interrupt();
            }
        }
        List<String> chain = new ArrayList<>();
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getClass().getSimpleName() + ": " + t.getMessage();
            if (!t.getClass().getName().equals("org.apache.cassandra.tools.BulkLoadException")) chain.add(m);
        }
        return String.join(" <- ", chain);
    }

    /** The replicas whose sessions failed. The loader connects to every replica on the storage port it was
     *  given (whatever port the ring lists), and a refused connection reads "unknown exception" here: the
     *  executor's log has Cassandra's own account. */
    private static String failedSessions(StreamState state, String storagePort) {
        List<String> failed = new ArrayList<>();
        for (SessionInfo s : state.sessions) {
            if (s.isFailed() || s.isAborted()) {
                failed.add(String.format("replica %s %s (connecting to its storage port %s): %s",
                        s.peer.getAddress().getHostAddress(), s.state, storagePort,
                        s.getFailureReason() == null ? "no reason given" : s.getFailureReason()));
            }
        }
        return failed.isEmpty() ? "the stream failed (no session says why)" : String.join("; ", failed);
    }

    /** LoaderOptions through its builder. The builder class is package-private (public methods, no public type),
     *  so its methods are called by reflection; there is no other way short of parseArgs, which exits the JVM on
     *  a bad argument. */
    private static LoaderOptions options(String folder, Map<String, String> target) throws IOException {
        Set<InetAddress> hosts = new HashSet<>();
        for (String host : target.get("hosts").split(",")) {
            if (host.isBlank()) continue;
            try {
                hosts.add(InetAddress.getByName(host.trim()));
            } catch (UnknownHostException e) {
                throw new IOException("unknown initial host " + host.trim() + " (of " + target.get("hosts") + ")");
            }
        }
        if (hosts.isEmpty()) throw new IOException("no initial hosts to stream " + folder + " to");

        EncryptionOptions client = new EncryptionOptions();
        if (target.get("truststore") != null) {
            client = client.withEnabled(true).withTrustStore(target.get("truststore"))
                    .withTrustStorePassword(target.get("truststorePassword"));
            if (target.get("keystore") != null) {
                client = client.withKeyStore(target.get("keystore")).withKeyStorePassword(target.get("keystorePassword"));
            }
        }
        EncryptionOptions.ServerEncryptionOptions internode = new EncryptionOptions.ServerEncryptionOptions();
        int throttle = Integer.parseInt(target.get("throttleMebibytes"));

        Object builder = LoaderOptions.builder();
        call(builder, "directory", File.class, new File(folder));
        call(builder, "hosts", Set.class, hosts);
        call(builder, "nativePort", int.class, Integer.parseInt(target.get("nativePort")));
        call(builder, "storagePort", int.class, Integer.parseInt(target.get("storagePort")));
        call(builder, "connectionsPerHost", int.class, Integer.parseInt(target.get("connectionsPerHost")));
        // Both limiters: whole SSTables (zero-copy, the usual case) and partial ones have limits of their own.
        call(builder, "throttleMebibytes", int.class, throttle);
        call(builder, "entireSSTableThrottleMebibytes", int.class, throttle);
        // applyConfig: the loader reads getEnabled(), which refuses options that were never applied.
        call(builder, "encOptions", EncryptionOptions.class, client.applyConfig());
        call(builder, "serverEncOptions", EncryptionOptions.ServerEncryptionOptions.class, internode.applyConfig());
        call(builder, "noProgress", boolean.class, true);
        if (target.get("username") != null) {
            call(builder, "user", String.class, target.get("username"));
            call(builder, "password", String.class, target.get("password"));
        }
        return (LoaderOptions) call(builder, "build", null, null);
    }

    private static Object call(Object builder, String name, Class<?> type, Object arg) {
        try {
            Method m = type == null ? builder.getClass().getMethod(name) : builder.getClass().getMethod(name, type);
            m.setAccessible(true);
            return type == null ? m.invoke(builder) : m.invoke(builder, arg);
        } catch (ReflectiveOperationException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw new IllegalStateException("LoaderOptions.Builder." + name + ": " + cause, cause);
        }
    }
}
