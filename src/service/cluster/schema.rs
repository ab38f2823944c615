//! The cluster's tables in PostgreSQL, created and migrated by the program:
//! each migration runs once, in order, in its own transaction, under an
//! advisory lock so servers and workers starting together do not race.

use tokio_postgres::Client;

use super::ClusterError;

/// The migrations, in order; a database at version N has run the first N.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[(&str, &str)] = &[
    ("jobs, workers and their notifications", V1),
    ("large inputs shared by content id", V2),
    ("batch jobs committed per domain, in order", V3),
];

/// The schema version this program writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Serializes migrations across every process on the database (an
/// arbitrary constant: "cvm" and the table family).
const MIGRATION_LOCK: i64 = 0x0063_766d_0001;

/// Bring the database to [`VERSION`]; refuses one that a newer program
/// migrated past it.
pub async fn migrate(client: &mut Client) -> Result<i32, ClusterError> {
    let db = |doing: &'static str| move |e| ClusterError::db(doing, e);
    let tx = client.transaction().await.map_err(db("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("taking the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS cvm_schema (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db("creating the schema table"))?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM cvm_schema", &[])
        .await
        .map_err(db("reading the schema version"))?;
    let current: i32 = row.get(0);
    if current > VERSION {
        return Err(ClusterError::Schema(format!(
            "the database's job schema is version {current}, newer than this cvm's {VERSION}: upgrade cvm on this machine"
        )));
    }
    for (at, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = at as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(|e| ClusterError::db(format!("migrating the job schema to version {version} ({name})"), e))?;
        tx.execute("INSERT INTO cvm_schema (version, name) VALUES ($1, $2)", &[&version, name])
            .await
            .map_err(db("recording the schema version"))?;
    }
    tx.commit().await.map_err(db("committing the migration"))?;
    Ok(VERSION)
}

/// Version 1. States and kinds are the proto's numbers. Times a lease is
/// judged by are the database's (`now()`), so machines' clocks need not
/// agree; the `*_ms` columns are Unix milliseconds for display.
const V1: &str = r#"
CREATE TABLE cvm_jobs (
    id bigserial PRIMARY KEY,
    request_id text NOT NULL UNIQUE,
    kind smallint NOT NULL,
    state smallint NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    deadline_ms bigint NOT NULL DEFAULT 0,
    submitted_ms bigint NOT NULL,
    started_ms bigint NOT NULL DEFAULT 0,
    finished_ms bigint NOT NULL DEFAULT 0,
    stage text NOT NULL DEFAULT '',
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    -- The proving key set the job uses ('' none): workers holding it take it first.
    key_set text NOT NULL DEFAULT '',
    payload_digest bytea NOT NULL,
    payload bytea NOT NULL,
    result bytea,
    error_code text,
    error_message text,
    -- Why the last attempt ended without a result (a lost lease).
    last_error text,
    lease_owner text,
    lease_expires timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX cvm_jobs_queued ON cvm_jobs (kind, priority DESC, id) WHERE state = 1;
CREATE INDEX cvm_jobs_leases ON cvm_jobs (lease_expires) WHERE state = 2;
CREATE INDEX cvm_jobs_finished ON cvm_jobs (finished_ms) WHERE state >= 3;

CREATE TABLE cvm_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    kinds smallint[] NOT NULL,
    backend text NOT NULL,
    adapter text NOT NULL DEFAULT '',
    started_ms bigint NOT NULL,
    heartbeat timestamptz NOT NULL DEFAULT now(),
    jobs_done bigint NOT NULL DEFAULT 0,
    key_sets text[] NOT NULL DEFAULT '{}'
);

-- Every change of a job's state, stage or cancellation is told on the
-- channel cvm_jobs as 'id:state:kind:cancel' (delivered at commit): idle
-- workers wake on new jobs, running ones hear their cancellation, servers
-- stream events to those awaiting.
CREATE FUNCTION cvm_job_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cvm_jobs', NEW.id || ':' || NEW.state || ':' || NEW.kind || ':' || NEW.cancel_requested::int);
    RETURN NULL;
END
$$;
CREATE TRIGGER cvm_jobs_notify AFTER INSERT OR UPDATE OF state, stage, cancel_requested ON cvm_jobs
    FOR EACH ROW EXECUTE FUNCTION cvm_job_notify();
"#;

/// Version 2: large inputs stored once and cached by each machine (see
/// [`super::blobs`]): uploaded zkeys and base sets by their ids, and the
/// cluster's one compliance key set per size.
const V2: &str = r#"
CREATE TABLE cvm_blobs (
    name text PRIMARY KEY,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// Version 3: batch jobs name their domain (a domain's batches run one at a
/// time, in submission order, on the server holding its lock) and record
/// the store's head when they start (where a retry looks for its commit);
/// each domain is bound to the register store that commits it.
const V3: &str = r#"
ALTER TABLE cvm_jobs ADD COLUMN domain text NOT NULL DEFAULT '';
ALTER TABLE cvm_jobs ADD COLUMN batch_head bigint NOT NULL DEFAULT 0;
CREATE INDEX cvm_jobs_batches ON cvm_jobs (domain, id) WHERE kind = 1 AND state IN (1, 2);
CREATE TABLE cvm_domains (
    domain text PRIMARY KEY,
    store_id text NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT now()
);
"#;
