package io.digitforge.bulk;

import java.io.IOException;

/** Streaming a folder of SSTables failed; the message names the folder, the table, and which host failed how. */
public final class SSTableStreamException extends IOException {
    private static final long serialVersionUID = 1L;

    SSTableStreamException(String message) {
        super(message);
    }
}
