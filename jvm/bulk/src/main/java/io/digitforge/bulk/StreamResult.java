package io.digitforge.bulk;

import java.io.Serializable;
import java.util.Locale;
import java.util.Map;

/** What one folder's stream sent: to which replicas, how many files and bytes, how long it took. */
public final class StreamResult implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String folder;
    private final long rows;
    private final String[] replicas;
    private final long[] files;
    private final long[] bytes;
    private final double seconds;

    StreamResult(String folder, long rows, Map<String, long[]> sent, double seconds) {
        this.folder = folder;
        this.rows = rows;
        this.replicas = sent.keySet().toArray(new String[0]);
        this.files = sent.values().stream().mapToLong(v -> v[0]).toArray();
        this.bytes = sent.values().stream().mapToLong(v -> v[1]).toArray();
        this.seconds = seconds;
    }

    private StreamResult(StreamResult r, String folder, long rows) {
        this.folder = folder;
        this.rows = rows;
        this.replicas = r.replicas;
        this.files = r.files;
        this.bytes = r.bytes;
        this.seconds = r.seconds;
    }

    /** The same result, with the rows the task wrote into the folder. */
    StreamResult withRows(long rows) {
        return new StreamResult(this, folder, rows);
    }

    /** The same result, named after the folder it was copied from (a remote staging folder). */
    StreamResult withFolder(String folder) {
        return new StreamResult(this, folder, rows);
    }

    public String getFolder() { return folder; }
    /** Rows the task wrote into the folder; -1 when the stream did not write them (streamFolders). */
    public long getRows() { return rows; }
    /** Replicas streamed to, "address:storagePort". */
    public String[] getReplicas() { return replicas.clone(); }
    /** Files sent, all replicas together (an SSTable's components count one by one). */
    public long getFiles() { long n = 0; for (long f : files) n += f; return n; }
    /** Bytes sent, all replicas together. */
    public long getBytes() { long n = 0; for (long b : bytes) n += b; return n; }
    public double getSeconds() { return seconds; }

    /** One JSON object, for Python: folder, rows, seconds, files, bytes, replicas: {address: {files, bytes}}. */
    public String toJson() {
        StringBuilder r = new StringBuilder();
        for (int i = 0; i < replicas.length; i++) {
            r.append(i == 0 ? "" : ", ").append(quote(replicas[i]))
                    .append(String.format(": {\"files\": %d, \"bytes\": %d}", files[i], bytes[i]));
        }
        return String.format(Locale.ROOT, "{\"folder\": %s, \"rows\": %d, \"seconds\": %.3f, \"files\": %d, \"bytes\": %d, "
                + "\"replicas\": {%s}}", quote(folder), rows, seconds, getFiles(), getBytes(), r);
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%s: %d files, %.1f MiB to %s in %.2f s", folder, getFiles(),
                getBytes() / 1048576.0, String.join(" ", replicas), seconds);
    }
}
