-- Schema version 1 of the PostgreSQL store. `__SCHEMA__` is replaced by the quoted schema name.
--
-- Only the rows are shared between nodes, so everything a node must agree on lives here:
-- leases are columns (`lock_token`, `locked_until`), not database locks held across user code.
-- Every write path locks the instance rows it touches, in instance-id order, before it reads or
-- writes their inboxes: that makes message ids increase in commit order per instance (FIFO) and
-- keeps concurrent turns that message each other free of deadlocks.
--
-- Status codes (never renumber): 0 Pending, 1 Running, 2 Completed, 3 Failed, 4 Terminated,
-- 5 Suspended, 6 ContinuedAsNew. 2, 3 and 4 are terminal.
--
-- All ids use the "C" collation: byte order, case-sensitive, the same on every server, and the
-- order rows are locked in.

CREATE SEQUENCE __SCHEMA__.lease_tokens;
CREATE SEQUENCE __SCHEMA__.message_ids;
CREATE SEQUENCE __SCHEMA__.activity_ids;

CREATE TABLE __SCHEMA__.instances (
    instance_id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    execution_id text COLLATE "C" NOT NULL,
    status smallint NOT NULL,
    input text,
    output text,
    failure text,
    custom_status text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    parent_instance_id text COLLATE "C",
    parent_execution_id text COLLATE "C",
    parent_task_id bigint,
    history_len bigint NOT NULL DEFAULT 0,
    -- The orchestration lease. A token with a future `locked_until` is a live lease; no token
    -- with a future `locked_until` is a retry delay (abandoned work).
    lock_token bigint,
    locked_until timestamptz,
    -- The earliest `visible_at` of the instance's messages ('-infinity' when one is visible
    -- now), NULL when its inbox is empty. Kept exact by every function that touches messages,
    -- so finding ready instances never scans the messages.
    next_visible_at timestamptz
);
-- Ready instances and the next time one becomes ready (timer due, retry delay over, lease
-- expired): one index probe. Parked instances (inbox empty) are not in the index at all.
CREATE INDEX instances_ready ON __SCHEMA__.instances ((GREATEST(next_visible_at, locked_until)))
    WHERE next_visible_at IS NOT NULL;
CREATE INDEX instances_created ON __SCHEMA__.instances (created_at, instance_id);
CREATE INDEX instances_parent ON __SCHEMA__.instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;

-- One row per committed turn: its events as a JSON array. The key includes the position of the
-- turn's first event, so a second append at the same position is rejected (split brain).
CREATE TABLE __SCHEMA__.history (
    instance_id text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C" NOT NULL,
    first_event_index bigint NOT NULL,
    events text NOT NULL,
    PRIMARY KEY (instance_id, execution_id, first_event_index)
);

-- Inboxes. `visible_at` is '-infinity' for ordinary messages and the due time of timers; it is
-- never "now" of some node, so clock skew between nodes cannot hide a message.
CREATE TABLE __SCHEMA__.messages (
    id bigint PRIMARY KEY DEFAULT nextval('__SCHEMA__.message_ids'),
    instance_id text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C",
    visible_at timestamptz NOT NULL,
    timer_id bigint,
    event text NOT NULL
);
CREATE INDEX messages_inbox ON __SCHEMA__.messages (instance_id, id);

CREATE TABLE __SCHEMA__.activities (
    id bigint PRIMARY KEY DEFAULT nextval('__SCHEMA__.activity_ids'),
    instance_id text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C" NOT NULL,
    task_id bigint NOT NULL,
    name text NOT NULL,
    input text,
    attempts integer NOT NULL DEFAULT 0,
    lock_token bigint,
    locked_until timestamptz
);
CREATE INDEX activities_instance ON __SCHEMA__.activities (instance_id);
CREATE INDEX activities_due ON __SCHEMA__.activities ((COALESCE(locked_until, '-infinity'::timestamptz)));

-- Creates an instance, or replaces a finished one (its history, inbox and unleased activities
-- go), and queues its start. Returns NULL when done, or the status of the unfinished instance
-- that holds the id (then nothing changed).
CREATE FUNCTION __SCHEMA__.create_instance(
    p_id text, p_name text, p_execution text, p_input text,
    p_parent_id text, p_parent_execution text, p_parent_task bigint,
    p_created timestamptz, p_start_event text, p_now timestamptz
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
    v_status smallint;
BEGIN
    LOOP
        SELECT status INTO v_status FROM __SCHEMA__.instances WHERE instance_id = p_id FOR UPDATE;
        IF FOUND THEN
            IF v_status NOT IN (2, 3, 4) THEN
                RETURN v_status;
            END IF;
            DELETE FROM __SCHEMA__.history WHERE instance_id = p_id;
            DELETE FROM __SCHEMA__.messages WHERE instance_id = p_id;
            -- A worker still running an activity of the old instance completes it later; its
            -- completion then finds another execution and enqueues nothing.
            DELETE FROM __SCHEMA__.activities
                WHERE instance_id = p_id AND NOT (lock_token IS NOT NULL AND locked_until > p_now);
            UPDATE __SCHEMA__.instances SET
                name = p_name, execution_id = p_execution, status = 0, input = p_input,
                output = NULL, failure = NULL, custom_status = NULL,
                created_at = p_created, updated_at = p_created, completed_at = NULL,
                parent_instance_id = p_parent_id, parent_execution_id = p_parent_execution,
                parent_task_id = p_parent_task, history_len = 0,
                lock_token = NULL, locked_until = NULL, next_visible_at = '-infinity'
            WHERE instance_id = p_id;
            EXIT;
        END IF;
        INSERT INTO __SCHEMA__.instances (
            instance_id, name, execution_id, status, input, created_at, updated_at,
            parent_instance_id, parent_execution_id, parent_task_id, next_visible_at
        ) VALUES (
            p_id, p_name, p_execution, 0, p_input, p_created, p_created,
            p_parent_id, p_parent_execution, p_parent_task, '-infinity'
        ) ON CONFLICT (instance_id) DO NOTHING;
        EXIT WHEN FOUND;
        -- Another transaction created it since the SELECT: lock that row and decide again.
    END LOOP;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        VALUES (p_id, p_execution, '-infinity', p_start_event);
    RETURN NULL;
END $$;

-- Enqueues a client message for the current execution. Returns -1 when the instance does not
-- exist, its status when it has finished (nothing enqueued), NULL when enqueued.
CREATE FUNCTION __SCHEMA__.send_message(p_id text, p_event text)
RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
    v_status smallint;
BEGIN
    SELECT status INTO v_status FROM __SCHEMA__.instances WHERE instance_id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    IF v_status IN (2, 3, 4) THEN
        RETURN v_status;
    END IF;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        VALUES (p_id, NULL, '-infinity', p_event);
    UPDATE __SCHEMA__.instances SET next_visible_at = '-infinity'
        WHERE instance_id = p_id AND next_visible_at IS DISTINCT FROM '-infinity';
    RETURN NULL;
END $$;

-- Leases up to p_max ready instances and returns, in one result, their status rows (message
-- columns NULL) and their visible messages (up to p_max_messages each, oldest first).
--
-- SKIP LOCKED under LIMIT: a candidate locked by another fetcher (or by a writer) is skipped
-- and the scan moves on to the next one, so contention never turns into "no work" while other
-- candidates exist. The messages are read by a second statement, whose snapshot is taken
-- after the leases: it sees every message committed before the lease was granted.
CREATE FUNCTION __SCHEMA__.fetch_orchestration_work(
    p_now timestamptz, p_until timestamptz, p_max integer, p_max_messages integer
) RETURNS TABLE (
    r_instance_id text, r_lock_token bigint, r_name text, r_execution_id text, r_status smallint,
    r_input text, r_output text, r_failure text, r_custom_status text, r_created_at timestamptz,
    r_updated_at timestamptz, r_completed_at timestamptz, r_parent_instance_id text,
    r_history_len bigint, r_message_id bigint, r_message_execution_id text, r_message_event text
) LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    WITH picked AS (
        SELECT i.instance_id FROM __SCHEMA__.instances i
        WHERE i.next_visible_at IS NOT NULL AND GREATEST(i.next_visible_at, i.locked_until) <= p_now
        ORDER BY GREATEST(i.next_visible_at, i.locked_until)
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE __SCHEMA__.instances i
        SET lock_token = nextval('__SCHEMA__.lease_tokens'), locked_until = p_until
        FROM picked WHERE i.instance_id = picked.instance_id
        RETURNING i.instance_id
    )
    SELECT array_agg(leased.instance_id) INTO v_ids FROM leased;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT i.instance_id::text, i.lock_token, i.name, i.execution_id::text, i.status, i.input,
               i.output, i.failure, i.custom_status, i.created_at, i.updated_at, i.completed_at,
               i.parent_instance_id::text, i.history_len, NULL::bigint, NULL::text, NULL::text
        FROM __SCHEMA__.instances i WHERE i.instance_id = ANY (v_ids)
        UNION ALL
        SELECT u.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               m.id, m.execution_id::text, m.event
        FROM unnest(v_ids) AS u(id)
        CROSS JOIN LATERAL (
            SELECT m.id, m.execution_id, m.event FROM __SCHEMA__.messages m
            WHERE m.instance_id = u.id AND m.visible_at <= p_now
            ORDER BY m.id LIMIT p_max_messages
        ) m;
END $$;

-- Commits one orchestration turn; see `TurnCommit` in durable-store for each part's rules.
-- r_code: 0 committed, 4 lease lost, 5 conflict (r_detail says which); a rejected commit
-- writes nothing. A history append at a taken position raises SQLSTATE DU409 (conflict), which
-- rolls back the whole call.
CREATE FUNCTION __SCHEMA__.commit_turn(
    p_instance text, p_token bigint, p_now timestamptz, p_execution text, p_expected_len bigint,
    p_consumed bigint[], p_history text, p_history_count bigint,
    p_status smallint, p_output text, p_failure text, p_custom_status text, p_commit_time timestamptz,
    p_act_task bigint[], p_act_name text[], p_act_input text[],
    p_timer_id bigint[], p_timer_at timestamptz[], p_timer_event text[],
    p_cancelled bigint[],
    p_new_id text[], p_new_name text[], p_new_execution text[], p_new_input text[],
    p_new_parent_id text[], p_new_parent_execution text[], p_new_parent_task bigint[],
    p_new_created timestamptz[], p_new_start_event text[], p_new_failed_event text[],
    p_msg_instance text[], p_msg_execution text[], p_msg_event text[],
    p_can_execution text, p_can_input text, p_can_events text[],
    OUT r_code integer, OUT r_detail text, OUT r_wake_orchestrations boolean,
    OUT r_wake_activities boolean, OUT r_finished boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
    v_terminal boolean := p_status IN (2, 3, 4);
    v_targets text[] := '{}';
    v_more boolean;
    v_existing smallint;
    v_kept bigint[];
    v_id bigint;
BEGIN
    r_code := 0;
    r_wake_orchestrations := false;
    r_wake_activities := false;
    r_finished := false;

    -- Every instance row this turn may write, locked in id order (deadlock-free against other
    -- turns doing the same); rows that do not exist yet are created below.
    PERFORM 1 FROM __SCHEMA__.instances
        WHERE instance_id = ANY (ARRAY[p_instance] || p_msg_instance || p_new_id || p_new_parent_id)
        ORDER BY instance_id FOR UPDATE;

    SELECT execution_id, history_len, lock_token, locked_until INTO v_row
        FROM __SCHEMA__.instances WHERE instance_id = p_instance;
    IF NOT FOUND THEN
        r_code := 4;
        RETURN;
    END IF;
    IF v_row.lock_token IS DISTINCT FROM p_token OR v_row.locked_until <= p_now THEN
        r_code := 4;
        RETURN;
    END IF;
    IF v_row.execution_id <> p_execution THEN
        r_code := 5;
        r_detail := format('instance %L runs execution %L, not %L', p_instance, v_row.execution_id, p_execution);
        RETURN;
    END IF;
    IF v_row.history_len <> p_expected_len THEN
        r_code := 5;
        r_detail := format('instance %L has %s history events, the turn expected %s',
                           p_instance, v_row.history_len, p_expected_len);
        RETURN;
    END IF;

    DELETE FROM __SCHEMA__.messages WHERE instance_id = p_instance AND id = ANY (p_consumed);
    IF p_history IS NOT NULL THEN
        INSERT INTO __SCHEMA__.history (instance_id, execution_id, first_event_index, events)
            VALUES (p_instance, p_execution, p_expected_len, p_history)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'history of instance % already has events at position %', p_instance, p_expected_len
                USING ERRCODE = 'DU409';
        END IF;
    END IF;

    INSERT INTO __SCHEMA__.activities (instance_id, execution_id, task_id, name, input)
        SELECT p_instance, p_execution, a.task, a.name, a.input
        FROM unnest(p_act_task, p_act_name, p_act_input) WITH ORDINALITY AS a(task, name, input, ord)
        ORDER BY a.ord;
    r_wake_activities := FOUND;

    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, timer_id, event)
        SELECT p_instance, p_execution, t.at, t.id, t.event
        FROM unnest(p_timer_id, p_timer_at, p_timer_event) WITH ORDINALITY AS t(id, at, event, ord)
        ORDER BY t.ord;
    r_wake_orchestrations := FOUND;
    DELETE FROM __SCHEMA__.messages
        WHERE instance_id = p_instance AND execution_id = p_execution AND timer_id = ANY (p_cancelled);

    -- Sub-orchestrations. An id held by an unfinished instance becomes a SubOrchestrationFailed
    -- message to the parent instead of failing the turn.
    FOR k IN 1 .. coalesce(array_length(p_new_id, 1), 0) LOOP
        v_existing := __SCHEMA__.create_instance(
            p_new_id[k], p_new_name[k], p_new_execution[k], p_new_input[k],
            p_new_parent_id[k], p_new_parent_execution[k], p_new_parent_task[k],
            p_new_created[k], p_new_start_event[k], p_now);
        IF v_existing IS NULL THEN
            r_wake_orchestrations := true;
        ELSIF p_new_failed_event[k] IS NOT NULL THEN
            p_msg_instance := p_msg_instance || p_new_parent_id[k];
            p_msg_execution := p_msg_execution || p_new_parent_execution[k];
            p_msg_event := p_msg_event || p_new_failed_event[k];
        END IF;
    END LOOP;

    -- Messages to instances: dropped when the target is missing, finished (this instance counts
    -- as finished when this turn ends it) or runs another execution than the one addressed.
    WITH delivered AS (
        INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        SELECT m.instance_id, m.execution_id, '-infinity', m.event
        FROM unnest(p_msg_instance, p_msg_execution, p_msg_event) WITH ORDINALITY AS m(instance_id, execution_id, event, ord)
        JOIN __SCHEMA__.instances i ON i.instance_id = m.instance_id
        WHERE CASE WHEN i.instance_id = p_instance THEN NOT v_terminal ELSE i.status NOT IN (2, 3, 4) END
          AND (m.execution_id IS NULL OR m.execution_id = i.execution_id)
        ORDER BY m.ord
        RETURNING instance_id
    )
    SELECT coalesce(array_agg(DISTINCT instance_id::text), '{}') INTO v_targets FROM delivered;

    IF p_can_execution IS NOT NULL THEN
        DELETE FROM __SCHEMA__.history WHERE instance_id = p_instance;
        -- Everything addressed to an execution belongs to the old one (timers, completions).
        DELETE FROM __SCHEMA__.messages WHERE instance_id = p_instance AND execution_id IS NOT NULL;
        DELETE FROM __SCHEMA__.activities
            WHERE instance_id = p_instance AND NOT (lock_token IS NOT NULL AND locked_until > p_now);
        SELECT array_agg(id ORDER BY id) INTO v_kept FROM __SCHEMA__.messages WHERE instance_id = p_instance;
        INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
            SELECT p_instance, p_can_execution, '-infinity', e.event
            FROM unnest(p_can_events) WITH ORDINALITY AS e(event, ord) ORDER BY e.ord;
        -- Messages that arrived during the turn are newer than the carried events: move them
        -- behind, so the new execution sees its start, the carried events, then these.
        FOREACH v_id IN ARRAY coalesce(v_kept, '{}') LOOP
            UPDATE __SCHEMA__.messages SET id = nextval('__SCHEMA__.message_ids') WHERE id = v_id;
        END LOOP;
    ELSIF v_terminal THEN
        DELETE FROM __SCHEMA__.messages WHERE instance_id = p_instance;
        DELETE FROM __SCHEMA__.activities
            WHERE instance_id = p_instance AND NOT (lock_token IS NOT NULL AND locked_until > p_now);
        r_finished := true;
    END IF;

    -- The status row, the released lease and the exact next visibility, in one row version.
    UPDATE __SCHEMA__.instances SET
        status = p_status, output = p_output, failure = p_failure, custom_status = p_custom_status,
        updated_at = p_commit_time,
        completed_at = CASE WHEN v_terminal THEN p_commit_time END,
        execution_id = coalesce(p_can_execution, execution_id),
        input = CASE WHEN p_can_execution IS NULL THEN input ELSE p_can_input END,
        history_len = CASE WHEN p_can_execution IS NULL THEN p_expected_len + p_history_count ELSE 0 END,
        lock_token = NULL, locked_until = NULL,
        next_visible_at = (SELECT min(m.visible_at) FROM __SCHEMA__.messages m WHERE m.instance_id = p_instance)
    WHERE instance_id = p_instance
    RETURNING next_visible_at IS NOT NULL INTO v_more;
    r_wake_orchestrations := r_wake_orchestrations OR v_more OR cardinality(v_targets) > 0;

    UPDATE __SCHEMA__.instances SET next_visible_at = '-infinity'
        WHERE instance_id = ANY (v_targets) AND instance_id <> p_instance
          AND next_visible_at IS DISTINCT FROM '-infinity';
END $$;

-- Completes a leased activity: deletes it and, when its instance still runs the same execution
-- and has not finished, enqueues p_event (TaskCompleted / TaskFailed). r_code 0 done, 4 lease
-- lost; r_enqueued says whether the instance got the message.
CREATE FUNCTION __SCHEMA__.complete_activity(
    p_id bigint, p_token bigint, p_now timestamptz, p_event text,
    OUT r_code integer, OUT r_enqueued boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_instance text;
    v_current_execution text;
    v_status smallint;
    v_execution text;
BEGIN
    r_code := 4;
    r_enqueued := false;
    SELECT instance_id INTO v_instance FROM __SCHEMA__.activities WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The instance row first, like every other writer of its inbox (lock order).
    SELECT execution_id, status INTO v_current_execution, v_status
        FROM __SCHEMA__.instances WHERE instance_id = v_instance FOR UPDATE;
    DELETE FROM __SCHEMA__.activities
        WHERE id = p_id AND lock_token = p_token AND locked_until > p_now
        RETURNING execution_id INTO v_execution;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    r_code := 0;
    IF v_current_execution = v_execution AND v_status NOT IN (2, 3, 4) THEN
        INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
            VALUES (v_instance, v_execution, '-infinity', p_event);
        UPDATE __SCHEMA__.instances SET next_visible_at = '-infinity'
            WHERE instance_id = v_instance AND next_visible_at IS DISTINCT FROM '-infinity';
        r_enqueued := true;
    END IF;
END $$;

-- Deletes the given instances with their history, inboxes and activities (leased or not: a
-- purged instance's leases are simply gone). Returns how many instances existed.
CREATE FUNCTION __SCHEMA__.delete_instances(p_ids text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
BEGIN
    PERFORM 1 FROM __SCHEMA__.instances WHERE instance_id = ANY (p_ids) ORDER BY instance_id FOR UPDATE;
    DELETE FROM __SCHEMA__.history WHERE instance_id = ANY (p_ids);
    DELETE FROM __SCHEMA__.messages WHERE instance_id = ANY (p_ids);
    DELETE FROM __SCHEMA__.activities WHERE instance_id = ANY (p_ids);
    DELETE FROM __SCHEMA__.instances WHERE instance_id = ANY (p_ids);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

-- Purges an instance and, recursively, the sub-orchestrations it started.
CREATE FUNCTION __SCHEMA__.purge_instance(p_root text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    WITH RECURSIVE tree(id) AS (
        SELECT p_root COLLATE "C"
        UNION
        SELECT c.instance_id FROM __SCHEMA__.instances c JOIN tree t ON c.parent_instance_id = t.id
    )
    SELECT array_agg(id) INTO v_ids FROM tree;
    RETURN __SCHEMA__.delete_instances(v_ids);
END $$;

-- Purges every instance with one of p_statuses created in [p_from, p_to]; the filter is
-- checked again on the locked rows, so an instance replaced meanwhile is not touched.
CREATE FUNCTION __SCHEMA__.purge_matching(p_statuses smallint[], p_from timestamptz, p_to timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    SELECT array_agg(instance_id) INTO v_ids FROM (
        SELECT instance_id FROM __SCHEMA__.instances
        WHERE status = ANY (p_statuses) AND created_at >= p_from AND created_at <= p_to
        ORDER BY instance_id FOR UPDATE
    ) s;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    RETURN __SCHEMA__.delete_instances(v_ids);
END $$;
