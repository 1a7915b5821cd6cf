-- name: 0001_ingest
-- description: Ingest bookkeeping: one batch per file or push, and every rejected record.
CREATE SEQUENCE IF NOT EXISTS batch_id_seq START 1;

-- One row per ingested file (or API push), written in the same transaction as its rows:
-- a batch row exists only for a file that was ingested completely.
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id     BIGINT PRIMARY KEY,
    source       VARCHAR NOT NULL,
    source_file  VARCHAR NOT NULL,
    file_format  VARCHAR,
    file_bytes   BIGINT,
    detected     BOOLEAN NOT NULL DEFAULT false,   -- true when --source auto chose the adapter
    target_table VARCHAR NOT NULL,
    lines        BIGINT NOT NULL,                  -- records read = accepted + duplicates + rejected
    accepted     BIGINT NOT NULL,
    duplicates   BIGINT NOT NULL,
    rejected     BIGINT NOT NULL,
    restated     BIGINT NOT NULL DEFAULT 0,        -- of accepted: replaced an earlier revision
    superseded   BIGINT NOT NULL DEFAULT 0,        -- of duplicates: an earlier revision in the same file
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    options      JSON
);

CREATE TABLE IF NOT EXISTS rejected_usage (
    batch_id     BIGINT NOT NULL,
    source       VARCHAR NOT NULL,
    source_file  VARCHAR NOT NULL,
    line_number  BIGINT,          -- physical line (JSONL, CSV) or record number (JSON documents, Parquet rows)
    record_path  VARCHAR,         -- where in a JSON document, e.g. data[0].results[2]
    raw          VARCHAR,         -- the original text of the record (valid UTF-8; bad bytes replaced)
    reason       VARCHAR NOT NULL,
    message      VARCHAR NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL
);

-- The earlier revision of a record a provider restated (same key, new values), kept for audit.
CREATE TABLE IF NOT EXISTS revisions (
    target_table   VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    record_key     VARCHAR NOT NULL,
    old_batch_id   BIGINT NOT NULL,
    new_batch_id   BIGINT NOT NULL,
    replaced_at    TIMESTAMPTZ NOT NULL,
    old_row        JSON NOT NULL
);
