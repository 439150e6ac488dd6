package io.digitforge.bulk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;

import org.apache.cassandra.config.DatabaseDescriptor;
import org.apache.cassandra.db.DecoratedKey;
import org.apache.cassandra.db.marshal.Int32Type;
import org.apache.cassandra.exceptions.InvalidRequestException;
import org.apache.cassandra.io.sstable.CQLSSTableWriter;

/**
 * One table's rows -> SSTables in one directory, through Cassandra's own CQLSSTableWriter.
 *
 * <p>Loaded only inside {@link CassandraClassLoader}, next to cassandra-all and its dependencies, never on
 * Spark's class path (their Guava, Netty and logging versions clash). Spark's side sees it through JDK
 * interfaces only: a {@code Consumer<Object[]>} of rows that is also {@code AutoCloseable}.
 *
 * <p>Rows are held until {@link #close()}, put in token order (the partition key is the first value, an
 * int) and written by the writer's sorted mode: it streams them to disk as they come, with no second
 * in-memory copy and no background thread. The files are in the current format ("oa" for 5.0): a node
 * imports them when its storage_compatibility_mode is NONE (digitforge.bulk checks that first).
 */
public final class SSTableWriterBridge implements Consumer<Object[]>, AutoCloseable {
    private final String directory;
    private final String createTable;
    private final String insert;
    private final List<Object[]> rows = new ArrayList<>();

    /** @param createTable the table's CREATE TABLE statement, keyspace-qualified, keyed by an int
     *  @param insert      an INSERT with one bind marker per value of a row, in order */
    public SSTableWriterBridge(String directory, String createTable, String insert) {
        this.directory = directory;
        this.createTable = createTable;
        this.insert = insert;
    }

    @Override
    public void accept(Object[] row) {
        rows.add(row);
    }

    @Override
    public void close() throws IOException {
        // Builder first: it sets up Cassandra's client mode, which names the partitioner.
        CQLSSTableWriter.Builder builder = CQLSSTableWriter.builder()
                .inDirectory(directory)
                .forTable(createTable)
                .using(insert)
                .sorted();
        CQLSSTableWriter writer = builder.build();
        try (CQLSSTableWriter closeWhenDone = writer) {
            int n = rows.size();
            DecoratedKey[] keys = new DecoratedKey[n];
            Integer[] order = new Integer[n];
            for (int i = 0; i < n; i++) {
                ByteBuffer key = Int32Type.instance.decompose((Integer) rows.get(i)[0]);
                keys[i] = DatabaseDescriptor.getPartitioner().decorateKey(key);
                order[i] = i;
            }
            java.util.Arrays.sort(order, Comparator.comparing(i -> keys[i]));
            for (int i : order) writer.addRow(rows.get(i));
        } catch (InvalidRequestException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        } finally {
            rows.clear();
        }
    }
}
