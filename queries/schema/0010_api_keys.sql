-- name: 0010_api_keys
-- description: API keys for `finops serve`: a lookup id, the SHA-256 of the secret (never the secret
--   itself), the role and the teams a key is scoped to. Revoked keys are kept (revoked_at set).
CREATE TABLE IF NOT EXISTS api_keys (
    key_id        VARCHAR PRIMARY KEY,   -- the public part of the key: fo_<key_id>_<secret>
    name          VARCHAR,               -- what the key is for, as its creator wrote it
    role          VARCHAR NOT NULL,      -- admin | finance | owner | engineer
    teams         VARCHAR[],             -- NULL: every team; else only these teams' data
    secret_sha256 VARCHAR NOT NULL,      -- hex SHA-256 of the whole key string
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ            -- NULL: in use
);
