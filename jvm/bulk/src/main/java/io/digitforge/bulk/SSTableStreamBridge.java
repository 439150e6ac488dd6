package io.digitforge.bulk;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.cassandra.config.DatabaseDescriptor;
import org.apache.cassandra.config.EncryptionOptions;
import org.apache.cassandra.dht.Range;
import org.apache.cassandra.dht.Token;
import org.apache.cassandra.io.sstable.SSTableLoader;
import org.apache.cassandra.io.util.File;
import org.apache.cassandra.locator.InetAddressAndPort;
import org.apache.cassandra.schema.TableMetadataRef;
import org.apache.cassandra.streaming.ProgressInfo;
import org.apache.cassandra.streaming.SessionInfo;
import org.apache.cassandra.streaming.StreamEvent;
import org.apache.cassandra.streaming.StreamEventHandler;
import org.apache.cassandra.streaming.StreamException;
import org.apache.cassandra.streaming.StreamingChannel;
import org.apache.cassandra.streaming.StreamResultFuture;
import org.apache.cassandra.streaming.StreamState;
import org.apache.cassandra.tools.BulkLoader;
import org.apache.cassandra.tools.LoaderOptions;
import org.apache.cassandra.utils.OutputHandler;

/**
 * Folders of SSTables ({@code .../<keyspace>/<table>/}) -> every replica of the rows they hold, through
 * Cassandra's own bulk loader (its {@code SSTableLoader} and {@code BulkLoader}'s client, what
 * {@code sstableloader} runs): it reads the ring and the table's schema from an initial host over the native
 * protocol, then streams each replica its part of the files over the storage (internode) port.
 *
 * <p>Loaded only inside {@link CassandraClassLoader}, like {@link SSTableWriterBridge}. Spark's side
 * ({@link SparkSSTableStreamer}) calls {@link #streamAll} by reflection with JDK types only, and gets JDK types
 * back: per folder a map replica -> {files, bytes} sent, or an {@link IOException} whose message says which host failed
 * and how (no Cassandra class in it, so it crosses back to Spark's class loader and to the driver intact).
 */
public final class SSTableStreamBridge {
    private SSTableStreamBridge() {}

    /**
     * @param folder  the SSTables' folder; its last two names are the keyspace and the table
     * @param target  StreamTarget.toMap() (see {@link #streamAll})
     * @return replica ("address:storagePort") -> {files sent, bytes sent}
     */
    public static Map<String, long[]> stream(String folder, Map<String, String> target) throws IOException {
        return streamAll(List.of(folder), target).get(0);
    }

    /**
     * Streams every folder at once, as one {@code BulkLoader.load} per folder would, without what each load
     * pays again: the ring and the schema are read once per keyspace (one driver session, not one per folder),
     * the folders' streams run side by side, and there is no 1 s pause after each ({@code BulkLoader.load}
     * sleeps to let sockets close, because sstableloader exits the JVM next; this JVM keeps running).
     *
     * @param target  StreamTarget.toMap(): hosts (comma-separated), nativePort, storagePort, connectionsPerHost,
     *                throttleMebibytes (0: none), and optional username, password, truststore,
     *                truststorePassword, keystore, keystorePassword, ignore (comma-separated replica addresses
     *                to leave out, as sstableloader's --ignore)
     * @return per folder, in order: replica ("address:storagePort") -> {files sent, bytes sent}
     */
    public static List<Map<String, long[]>> streamAll(List<String> folders, Map<String, String> target)
            throws IOException {
        String hosts = target.get("hosts");
        List<SSTableLoader> loaders = new ArrayList<>();
        List<Tally> tallies = new ArrayList<>();
        List<Integer> sstables = new ArrayList<>();
        List<String> keyspaces = new ArrayList<>();  // each folder's: the name of its parent
        DatabaseDescriptor.clientInitialization(false);  // client mode (as the writer); before StreamManager starts
        LoaderOptions options = options(folders.get(0), target);
        throttle(options);
        Map<String, SSTableLoader.Client> rings = new LinkedHashMap<>();
        OutputHandler quiet = new OutputHandler.LogOutput();
        try {
            for (String folder : folders) {
                java.io.File dir = new java.io.File(folder);
                if (!dir.isDirectory()) throw new IOException(folder + ": no such folder of SSTables");
                String keyspace = dir.getParentFile().getName();
                keyspaces.add(keyspace);
                String[] data = dir.list((d, name) -> name.endsWith("-Data.db"));
                sstables.add(data == null ? 0 : data.length);
                SSTableLoader.Client ring = rings.get(keyspace);
                if (ring == null) {
                    ring = readRing(keyspace, options, folder, target);
                    rings.put(keyspace, ring);
                }
                loaders.add(new SSTableLoader(new File(dir).toAbsolute(), new SharedRing(ring), quiet,
                        options.connectionsPerHost, null, null));
            }
            List<StreamResultFuture> futures = new ArrayList<>();
            for (int i = 0; i < loaders.size(); i++) {
                Tally tally = new Tally(folders.get(i));
                tallies.add(tally);
                SSTableLoader.Client ring = rings.get(keyspaces.get(i));
                futures.add(tally.future = loaders.get(i).stream(ignored(ring, target.get("ignore")), tally));
            }
            List<Map<String, long[]>> sent = new ArrayList<>();
            for (int i = 0; i < futures.size(); i++) {
                String folder = folders.get(i);
                String table = keyspaces.get(i) + "." + new java.io.File(folder).getName();
                try {
                    futures.get(i).get();
                } catch (Exception e) {
                    throw new IOException(String.format("%s: streaming %s (initial hosts %s, native port %s, storage "
                                    + "port %s) failed: %s", table, folder, hosts, target.get("nativePort"),
                            target.get("storagePort"), describe(e, tallies.get(i), target.get("storagePort"))));
                }
                Map<String, long[]> s = tallies.get(i).sent();
                long files = s.values().stream().mapToLong(v -> v[0]).sum();
                if (sstables.get(i) > 0 && files == 0) {
                    throw new IOException(String.format("%s: %d SSTables of %s, none streamed: the cluster at %s has "
                            + "no replica for them (does the table %s exist there?)", table, sstables.get(i), folder,
                            hosts, table));
                }
                sent.add(s);
            }
            return sent;
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(String.format("streaming %s (initial hosts %s, native port %s, storage port %s) "
                            + "failed: %s", String.join(", ", folders), hosts, target.get("nativePort"),
                    target.get("storagePort"), describe(e, null, target.get("storagePort"))));
        }
    }

    /** As BulkLoader.load: the loader's throttles (0: none) into this JVM's streaming settings. */
    private static void throttle(LoaderOptions options) {
        DatabaseDescriptor.setStreamThroughputOutboundBytesPerSec(options.throttleBytes);
        DatabaseDescriptor.setInterDCStreamThroughputOutboundBytesPerSec(options.interDcThrottleBytes);
        DatabaseDescriptor.setEntireSSTableStreamThroughputOutboundMebibytesPerSec(options.entireSSTableThrottleMebibytes);
        DatabaseDescriptor.setEntireSSTableInterDCStreamThroughputOutboundMebibytesPerSec(
                options.entireSSTableInterDcThrottleMebibytes);
    }

    /**
     * The ring and the keyspace's tables, read once over the native port as BulkLoader's own client reads them
     * ({@link QuickRing}, without the driver's 2 s shutdown wait), with that client's connections to the replicas
     * (the one sstableloader uses: login, TLS, and the storage port it was given rather than the ring's). The
     * client class and its TLS helper are not public, hence reflection.
     */
    private static SSTableLoader.Client readRing(String keyspace, LoaderOptions options, String folder,
                                                 Map<String, String> target) throws IOException {
        try {
            Method ssl = BulkLoader.class.getDeclaredMethod("buildSSLOptions", EncryptionOptions.class);
            ssl.setAccessible(true);
            Class<?> external = Class.forName("org.apache.cassandra.tools.BulkLoader$ExternalClient", true,
                    BulkLoader.class.getClassLoader());
            Constructor<?> make = external.getDeclaredConstructor(Set.class, int.class,
                    com.datastax.driver.core.AuthProvider.class, EncryptionOptions.ServerEncryptionOptions.class,
                    com.datastax.driver.core.SSLOptions.class);
            make.setAccessible(true);
            com.datastax.driver.core.SSLOptions sslOptions =
                    (com.datastax.driver.core.SSLOptions) ssl.invoke(null, options.clientEncOptions);
            SSTableLoader.Client connections = (SSTableLoader.Client) make.newInstance(options.hosts,
                    options.storagePort, options.authProvider, options.serverEncOptions, sslOptions);
            QuickRing ring = new QuickRing(options.hosts, options.storagePort, options.authProvider, sslOptions,
                    connections);
            ring.init(keyspace);
            return ring;
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw new IOException(String.format("%s: reading the ring from initial hosts %s (native port %s) failed: %s",
                    folder, target.get("hosts"), target.get("nativePort"), describe(cause, null, target.get("storagePort"))));
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("BulkLoader's client: " + e, e);
        }
    }

    /** The replicas named in `ignore` (addresses), as the ring lists them (with their storage port). */
    private static Set<InetAddressAndPort> ignored(SSTableLoader.Client ring, String ignore) throws IOException {
        Set<InetAddressAndPort> out = new HashSet<>();
        if (ignore == null || ignore.isBlank()) return out;
        for (String host : ignore.split(",")) {
            if (host.isBlank()) continue;
            InetAddress address;
            try {
                address = InetAddress.getByName(host.trim());
            } catch (UnknownHostException e) {
                throw new IOException("unknown replica to ignore " + host.trim());
            }
            for (InetAddressAndPort endpoint : ring.getEndpointToRangesMap().keySet()) {
                if (endpoint.getAddress().equals(address)) out.add(endpoint);
            }
        }
        return out;
    }

    /** One loader's view of a ring read once: the same ranges and tables, and stop() leaves it to the others. */
    private static final class SharedRing extends SSTableLoader.Client {
        private final SSTableLoader.Client ring;

        SharedRing(SSTableLoader.Client ring) {
            this.ring = ring;
        }

        @Override
        public void init(String keyspace) {
            for (Map.Entry<InetAddressAndPort, Collection<Range<Token>>> e : ring.getEndpointToRangesMap().entrySet()) {
                for (Range<Token> r : e.getValue()) addRangeForEndpoint(r, e.getKey());
            }
        }

        @Override
        public TableMetadataRef getTableMetadata(String table) {
            return ring.getTableMetadata(table);
        }

        @Override
        public void setTableMetadata(TableMetadataRef cfm) {
            ring.setTableMetadata(cfm);
        }

        @Override
        public StreamingChannel.Factory getConnectionFactory() {
            return ring.getConnectionFactory();
        }

        @Override
        public void stop() {}
    }

    /**
     * What one stream sent, per replica, from its events, as BulkLoader's own progress display counts it: the
     * stream's final state no longer lists the files its sessions sent.
     */
    private static final class Tally implements StreamEventHandler {
        final String folder;
        StreamResultFuture future;
        private final List<SessionInfo> sessions = new ArrayList<>();

        Tally(String folder) {
            this.folder = folder;
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
