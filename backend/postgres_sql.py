"""The SQL of `postgres_store.PostgresStore`: its schema and every statement, in one place.

Rows keep insertion order through `pos` (a replaced row keeps its place), as the
in-memory store's dicts do. A session's messages and terminals go with it (ON DELETE
CASCADE). `messages.published_len` is how much of a message's text its events have
carried; the rest is streamed text a coalesced delta has yet to publish.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id text PRIMARY KEY,
    pos bigserial UNIQUE,
    title text NOT NULL,
    title_bytes integer NOT NULL,
    state text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    pos bigserial PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id text NOT NULL,
    role text NOT NULL,
    text text NOT NULL,
    streaming boolean NOT NULL,
    created_at timestamptz NOT NULL,
    published_len integer NOT NULL,
    UNIQUE (session_id, id)
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (session_id, pos);
CREATE TABLE IF NOT EXISTS terminals (
    id text PRIMARY KEY,
    pos bigserial UNIQUE,
    name text NOT NULL,
    session_id text REFERENCES sessions (id) ON DELETE CASCADE,
    status text NOT NULL,
    exit_code integer,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS terminals_by_session ON terminals (session_id);
CREATE TABLE IF NOT EXISTS realtime_outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS realtime_outbox_by_topic ON realtime_outbox (topic, id);
CREATE TABLE IF NOT EXISTS realtime_meta (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation text NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope text NOT NULL,
    key text NOT NULL,
    operation text NOT NULL,
    fingerprint text NOT NULL,
    result text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at);
"""
#: Held while the schema is created: concurrent CREATE ... IF NOT EXISTS can collide.
#: The scope of the store's publish fences (`aiohttp_realtime.Fence`): drawn once per
#: database, with the database's own oid (a dump restored into another database, whose
#: outbox ids start again lower, gets another scope even though its rows came along).
GENERATION = """
WITH drawn AS (
    INSERT INTO realtime_meta (generation) VALUES ($1) ON CONFLICT (one) DO NOTHING RETURNING generation
)
SELECT (SELECT generation FROM drawn UNION ALL SELECT generation FROM realtime_meta LIMIT 1)
    || '.' || (SELECT oid FROM pg_database WHERE datname = current_database())::text
"""
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('realtime-demo schema', 0))"
#: Start-up is not a client's request: nodes starting together wait their turn for the
#: schema (and a migration may be slow) longer than a unit waits for a topic.
SCHEMA_DEADLINES = "SET LOCAL lock_timeout = '60s'; SET LOCAL statement_timeout = '60s'"
SCHEMA_TIMEOUT_S = 60.0

# ---------------------------------------------------------------- topic locks

#: Volatile functions in the output are evaluated after ORDER BY: the locks are taken
#: in key order, once per distinct key (two topics may share a hash). The same
#: statement sets `idle_session_timeout` ($2, ms) for as long as they are held
#: (`postgres_deadlines.py`: a stalled holder's session is ended, its locks released);
#: if a lock wait fails (`lock_timeout`) the setting is rolled back with the statement,
#: and the locks it did take are released with the connection's reset or end.
LOCK = """
SELECT count(*) AS locked, set_config('idle_session_timeout', $2::text, false) FROM (
    SELECT pg_advisory_lock(key)
    FROM (SELECT DISTINCT hashtextextended(topic, 0) AS key FROM unnest($1::text[]) AS topic) AS keys
    ORDER BY key
) AS taken
"""
#: Releases them, and the idle timeout with them.
UNLOCK = """
SELECT count(pg_advisory_unlock(key)) AS released, set_config('idle_session_timeout', '0', false)
FROM (SELECT DISTINCT hashtextextended(topic, 0) AS key FROM unnest($1::text[]) AS topic) AS keys
"""
#: One topic's lock if it is free (then with the idle timeout $2, as LOCK).
TRY_LOCK_ONE = """
SELECT CASE WHEN pg_try_advisory_lock(hashtextextended($1::text, 0))
    THEN set_config('idle_session_timeout', $2::text, false) IS NOT NULL
    ELSE false END
"""
#: The readiness probe.
PROBE = "SELECT 1"

# ---------------------------------------------------------------- outbox

OUTBOX_INSERT = """
INSERT INTO realtime_outbox (topic, payload)
SELECT topic, payload FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e (topic, payload, n)
ORDER BY n
RETURNING id
"""
OUTBOX_LEFT = "SELECT id, topic, payload FROM realtime_outbox WHERE topic = ANY($1::text[]) ORDER BY id"
OUTBOX_DELETE = "DELETE FROM realtime_outbox WHERE id = ANY($1::bigint[])"
OUTBOX_STALE_TOPICS = """
SELECT topic FROM realtime_outbox
WHERE created_at < now() - make_interval(secs => $1::float8)
GROUP BY topic ORDER BY min(id)
"""

# ---------------------------------------------------------------- sessions

_SESSION = "SELECT id, title, state, created_at, updated_at FROM sessions"
SESSIONS = f"{_SESSION} ORDER BY pos"
SESSION = f"{_SESSION} WHERE id = $1"
#: (count, title bytes of all, title bytes of this one or NULL) for the quotas.
SESSIONS_SIZE = """
SELECT count(*), coalesce(sum(title_bytes), 0), max(title_bytes) FILTER (WHERE id = $1::text) FROM sessions
"""
SESSION_PUT = """
INSERT INTO sessions (id, title, title_bytes, state, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    title = excluded.title, title_bytes = excluded.title_bytes, state = excluded.state,
    created_at = excluded.created_at, updated_at = excluded.updated_at
"""
SESSION_TERMINALS_DELETE = """
WITH gone AS (DELETE FROM terminals WHERE session_id = $1 RETURNING id, pos)
SELECT id FROM gone ORDER BY pos
"""
SESSION_DELETE = "DELETE FROM sessions WHERE id = $1 RETURNING id"

# ---------------------------------------------------------------- messages

_MESSAGE = "SELECT id, session_id, role, text, streaming, created_at FROM messages"
MESSAGES = f"{_MESSAGE} WHERE session_id = $1 ORDER BY pos"
MESSAGE = f"{_MESSAGE} WHERE session_id = $1 AND id = $2"
#: Insert or replace (in place); NULL, nothing kept, when the session is unknown.
MESSAGE_PUT = """
INSERT INTO messages (session_id, id, role, text, streaming, created_at, published_len)
SELECT $1::text, $2::text, $3::text, $4::text, $5::boolean, $6::timestamptz, length($4::text)
WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1::text)
ON CONFLICT (session_id, id) DO UPDATE SET
    role = excluded.role, text = excluded.text, streaming = excluded.streaming,
    created_at = excluded.created_at, published_len = excluded.published_len
RETURNING pos
"""
#: The length before the append (the appended text's offset); NULL if not appended.
MESSAGE_APPEND = """
UPDATE messages SET text = text || $3::text
WHERE session_id = $1 AND id = $2 AND streaming AND length(text) + length($3::text) <= $4::integer
RETURNING length(text) - length($3::text)
"""
MESSAGE_TAKE_UNPUBLISHED = """
UPDATE messages AS m SET published_len = length(m.text)
FROM (SELECT pos, published_len FROM messages WHERE session_id = $1 AND id = $2) AS before
WHERE m.pos = before.pos AND length(m.text) > before.published_len
RETURNING before.published_len AS "offset", substr(m.text, before.published_len + 1) AS text
"""
#: Keep the newest messages within a count ($2) and a UTF-8 budget ($3); the newest
#: always (the in-memory store's rule, as one statement).
MESSAGES_TRIM = """
DELETE FROM messages WHERE pos IN (
    SELECT pos FROM (
        SELECT pos, row_number() OVER newest AS n, sum(octet_length(text)) OVER newest AS bytes
        FROM messages WHERE session_id = $1
        WINDOW newest AS (ORDER BY pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ) AS ranked
    WHERE n > $2::integer OR (n > 1 AND bytes > $3::integer)
)
"""

# ---------------------------------------------------------------- terminals

TERMINALS = "SELECT id, name, session_id, status, exit_code, updated_at FROM terminals ORDER BY pos"
#: (count, whether this one exists, whether its session is known) for the quota.
TERMINALS_SIZE = """
SELECT (SELECT count(*) FROM terminals),
       EXISTS (SELECT 1 FROM terminals WHERE id = $1::text),
       $2::text IS NULL OR EXISTS (SELECT 1 FROM sessions WHERE id = $2::text)
"""
TERMINAL_PUT = """
INSERT INTO terminals (id, name, session_id, status, exit_code, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, session_id = excluded.session_id, status = excluded.status,
    exit_code = excluded.exit_code, updated_at = excluded.updated_at
"""
TERMINAL_DELETE = "DELETE FROM terminals WHERE id = $1 RETURNING id"

# ---------------------------------------------------------------- idempotent writes' outcomes

IDEMPOTENCY_RECALL = """
SELECT scope, key, operation, fingerprint, result, expires_at FROM idempotency_keys
WHERE scope = $1 AND key = $2 AND expires_at > $3
"""
#: Expired outcomes, a batch at a time, skipping rows another unit is deleting (so two
#: units never wait for each other here).
IDEMPOTENCY_PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at <= $1
    ORDER BY expires_at LIMIT $2::integer FOR UPDATE SKIP LOCKED
))
"""
#: Keep an outcome, replacing an expired one. A row another unit has inserted but not
#: committed makes this wait for it (the primary key); none returned: the key is taken.
IDEMPOTENCY_REMEMBER = """
INSERT INTO idempotency_keys (scope, key, operation, fingerprint, result, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (scope, key) DO UPDATE SET
    operation = excluded.operation, fingerprint = excluded.fingerprint,
    result = excluded.result, expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= $7
RETURNING 1
"""
