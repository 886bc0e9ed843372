-- Schema version 4: what the dashboard needs to stay fast with millions of instances.
--
-- Lists filtered by status or by name, newest or oldest first, walk one of these indexes in
-- (created, id) order and stop after a page.
CREATE INDEX instances_status ON __SCHEMA__.instances (status, created_at, instance_id);
CREATE INDEX instances_name ON __SCHEMA__.instances (name, created_at, instance_id);

-- How many instances have each status, kept by triggers in the transaction that changes a
-- status, so counting reads a few rows instead of every instance. Each database session
-- (`backend`, its pid) adds its changes to its own rows: a session runs one transaction at a
-- time, so no two transactions ever update the same counter row (no contention between
-- nodes, no deadlocks). The count is the sum over sessions; rows of sessions that have ended
-- are folded into backend 0 by fold_instance_counts (run at connect).
CREATE TABLE __SCHEMA__.instance_counts (
    status smallint NOT NULL,
    backend integer NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (status, backend)
);
INSERT INTO __SCHEMA__.instance_counts (status, backend, n)
    SELECT status, 0, count(*) FROM __SCHEMA__.instances GROUP BY status;

CREATE FUNCTION __SCHEMA__.count_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO __SCHEMA__.instance_counts AS c (status, backend, n)
            VALUES (NEW.status, pg_backend_pid(), 1)
            ON CONFLICT (status, backend) DO UPDATE SET n = c.n + 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO __SCHEMA__.instance_counts AS c (status, backend, n)
            VALUES (OLD.status, pg_backend_pid(), -1)
            ON CONFLICT (status, backend) DO UPDATE SET n = c.n - 1;
    ELSE
        INSERT INTO __SCHEMA__.instance_counts AS c (status, backend, n)
            VALUES (OLD.status, pg_backend_pid(), -1), (NEW.status, pg_backend_pid(), 1)
            ON CONFLICT (status, backend) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER instances_count_insert AFTER INSERT ON __SCHEMA__.instances
    FOR EACH ROW EXECUTE FUNCTION __SCHEMA__.count_status_change();
CREATE TRIGGER instances_count_delete AFTER DELETE ON __SCHEMA__.instances
    FOR EACH ROW EXECUTE FUNCTION __SCHEMA__.count_status_change();
-- Only statements that set the status, and only rows whose status changed.
CREATE TRIGGER instances_count_update AFTER UPDATE OF status ON __SCHEMA__.instances
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION __SCHEMA__.count_status_change();

-- Folds the rows of sessions that have ended into backend 0. Rows a live session holds are
-- skipped, never waited for; ended sessions hold none.
CREATE FUNCTION __SCHEMA__.fold_instance_counts() RETURNS void LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM __SCHEMA__.instance_counts c
        WHERE c.ctid IN (
            SELECT ctid FROM __SCHEMA__.instance_counts
            WHERE backend <> 0 AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
            FOR UPDATE SKIP LOCKED
        )
        RETURNING c.status, c.n
    )
    INSERT INTO __SCHEMA__.instance_counts AS c (status, backend, n)
        SELECT status, 0, sum(n) FROM gone GROUP BY status
        ON CONFLICT (status, backend) DO UPDATE SET n = c.n + excluded.n;
$$;
