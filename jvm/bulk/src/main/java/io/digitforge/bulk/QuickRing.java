package io.digitforge.bulk;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.util.Collection;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import com.datastax.driver.core.AuthProvider;
import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.Host;
import com.datastax.driver.core.Metadata;
import com.datastax.driver.core.NettyOptions;
import com.datastax.driver.core.SSLOptions;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.TokenRange;
import com.datastax.shaded.netty.channel.EventLoopGroup;

import org.apache.cassandra.dht.IPartitioner;
import org.apache.cassandra.dht.Range;
import org.apache.cassandra.dht.Token;
import org.apache.cassandra.io.sstable.SSTableLoader;
import org.apache.cassandra.locator.InetAddressAndPort;
import org.apache.cassandra.schema.TableMetadataRef;
import org.apache.cassandra.schema.Types;
import org.apache.cassandra.streaming.StreamingChannel;
import org.apache.cassandra.utils.FBUtilities;
import org.apache.cassandra.utils.NativeSSTableLoaderClient;

/**
 * The ring and a keyspace's tables, read as BulkLoader's client reads them (NativeSSTableLoaderClient.init: the
 * same driver settings, ranges and schema queries; the schema is built by its own methods), with one difference:
 * the driver closes its event loops at once. NativeSSTableLoaderClient closes its Cluster with the driver's
 * default Netty shutdown, which waits a 2 s quiet period: that wait was ~2.0 of the ~2.1 s a stream task spent
 * before sending its first byte. Connections to the replicas still come from BulkLoader's own client (its
 * login, TLS and storage-port handling), which is never initialised itself.
 */
final class QuickRing extends NativeSSTableLoaderClient {
    private static final NettyOptions CLOSE_AT_ONCE = new NettyOptions() {
        @Override
        public void onClusterClose(EventLoopGroup eventLoopGroup) {
            // Every connection is closed by now: nothing is left for a quiet period to wait for.
            eventLoopGroup.shutdownGracefully(0, 15, TimeUnit.SECONDS).syncUninterruptibly();
        }
    };

    private final Collection<InetSocketAddress> hosts;
    private final AuthProvider authProvider;
    private final SSLOptions sslOptions;
    private final int storagePort;
    private final SSTableLoader.Client connections;

    QuickRing(Collection<InetSocketAddress> hosts, int storagePort, AuthProvider authProvider, SSLOptions sslOptions,
              SSTableLoader.Client connections) {
        super(hosts, storagePort, authProvider, sslOptions);
        this.hosts = hosts;
        this.storagePort = storagePort;
        this.authProvider = authProvider;
        this.sslOptions = sslOptions;
        this.connections = connections;
    }

    @Override
    @SuppressWarnings("deprecation")  // Host.getAddress, as NativeSSTableLoaderClient calls it
    public void init(String keyspace) {
        Cluster.Builder builder = Cluster.builder().addContactPointsWithPorts(hosts).allowBetaProtocolVersion()
                .withNettyOptions(CLOSE_AT_ONCE);
        if (sslOptions != null) builder.withSSL(sslOptions);
        if (authProvider != null) builder.withAuthProvider(authProvider);
        try (Cluster cluster = builder.build(); Session session = cluster.connect()) {
            Metadata metadata = cluster.getMetadata();
            IPartitioner partitioner = FBUtilities.newPartitioner(metadata.getPartitioner());
            Token.TokenFactory tokens = partitioner.getTokenFactory();
            for (TokenRange tokenRange : metadata.getTokenRanges()) {
                Set<Host> endpoints = metadata.getReplicas(Metadata.quote(keyspace), tokenRange);
                Range<Token> range = new Range<>(tokens.fromString(tokenRange.getStart().getValue().toString()),
                        tokens.fromString(tokenRange.getEnd().getValue().toString()));
                for (Host endpoint : endpoints) {
                    int broadcastPort = endpoint.getBroadcastSocketAddress().getPort();
                    addRangeForEndpoint(range, InetAddressAndPort.getByNameOverrideDefaults(
                            endpoint.getAddress().getHostAddress(), broadcastPort != 0 ? broadcastPort : storagePort));
                }
            }
            Types types = (Types) schema("fetchTypes", new Class<?>[]{String.class, Session.class}, keyspace, session);
            Class<?>[] signature = {String.class, Session.class, IPartitioner.class, Types.class};
            tables.putAll(tableRefs(schema("fetchTables", signature, keyspace, session, partitioner, types)));
            tables.putAll(tableRefs(schema("fetchViews", signature, keyspace, session, partitioner, types)));
        } catch (Exception e) {
            throw new RuntimeException("Unable to initialise " + NativeSSTableLoaderClient.class.getName(), e);
        }
    }

    @Override
    public StreamingChannel.Factory getConnectionFactory() {
        return connections.getConnectionFactory();
    }

    /** NativeSSTableLoaderClient's private static schema readers (they turn system_schema rows into metadata). */
    private static Object schema(String name, Class<?>[] signature, Object... args) throws Exception {
        Method m = NativeSSTableLoaderClient.class.getDeclaredMethod(name, signature);
        m.setAccessible(true);
        try {
            return m.invoke(null, args);
        } catch (InvocationTargetException e) {
            throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, TableMetadataRef> tableRefs(Object tables) {
        return (Map<String, TableMetadataRef>) tables;
    }
}
