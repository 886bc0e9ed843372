-- Schema version 2: batch forms of the four hot writes, for group commit.
--
-- Each function below does for a whole batch what its version 1 counterpart does for one call,
-- with set-based statements: a batch of 200 turns runs each statement once, not 200 times, and
-- shares one round trip, one transaction and one WAL flush. (On a 2-core machine most of the
-- server's time per call was statement start-up, not row work.) Each item of a batch gets its
-- own result, exactly as if it had been called alone; an item that would need a path the batch
-- form does not take is sent by the client through the version 1 function instead.
--
-- Like every writer, each function locks the instance rows it writes in instance-id order
-- before touching their inboxes (FIFO per instance, no deadlocks), and callers never put the
-- same instance twice in one batch.

-- Commits a batch of turns without sub-orchestrations, messages to other instances or
-- continue-as-new (those use commit_turn). Turn k is element k of the p_* turn arrays; its
-- consumed messages, activities, timers and cancelled timers are the elements of the flat
-- arrays whose *_turn element is k. One row per turn, in order: r_code 0 committed, 4 lease
-- lost, 5 conflict (r_detail says which), r_more true when the instance has messages left. A
-- rejected turn writes nothing; a history append at a taken position raises DU409 for the
-- whole batch (the client then commits its turns one by one to find the culprit).
CREATE FUNCTION __SCHEMA__.commit_turns(
    p_now timestamptz,
    p_instance text[], p_token bigint[], p_execution text[], p_expected_len bigint[],
    p_history text[], p_history_count bigint[], p_status smallint[], p_output text[],
    p_failure text[], p_custom_status text[], p_commit_time timestamptz[],
    p_consumed_turn integer[], p_consumed bigint[],
    p_act_turn integer[], p_act_task bigint[], p_act_name text[], p_act_input text[],
    p_timer_turn integer[], p_timer_id bigint[], p_timer_at timestamptz[], p_timer_event text[],
    p_cancel_turn integer[], p_cancel bigint[]
) RETURNS TABLE (r_code integer, r_detail text, r_more boolean) LANGUAGE plpgsql AS $$
DECLARE
    v_codes integer[];
    v_details text[];
    v_ok integer[];
    v_terminal text[];
    v_more integer[];
    v_appends bigint;
    v_appended bigint;
BEGIN
    PERFORM 1 FROM __SCHEMA__.instances WHERE instance_id = ANY (p_instance) ORDER BY instance_id FOR UPDATE;

    -- The fencing checks of commit_turn, per turn.
    SELECT array_agg(c.code ORDER BY c.k), array_agg(c.detail ORDER BY c.k)
        INTO v_codes, v_details
    FROM (
        SELECT t.k,
            CASE WHEN i.instance_id IS NULL OR i.lock_token IS DISTINCT FROM t.token
                      OR i.locked_until <= p_now THEN 4
                 WHEN i.execution_id <> t.execution OR i.history_len <> t.expected THEN 5
                 ELSE 0 END AS code,
            CASE WHEN i.instance_id IS NULL OR i.lock_token IS DISTINCT FROM t.token
                      OR i.locked_until <= p_now THEN NULL
                 WHEN i.execution_id <> t.execution THEN
                     format('instance %L runs execution %L, not %L', t.id, i.execution_id, t.execution)
                 WHEN i.history_len <> t.expected THEN
                     format('instance %L has %s history events, the turn expected %s',
                            t.id, i.history_len, t.expected)
            END AS detail
        FROM unnest(p_instance, p_token, p_execution, p_expected_len) WITH ORDINALITY
            AS t(id, token, execution, expected, k)
        LEFT JOIN __SCHEMA__.instances i ON i.instance_id = t.id
    ) c;
    SELECT coalesce(array_agg(c.k), '{}') INTO v_ok
        FROM unnest(v_codes) WITH ORDINALITY AS c(code, k) WHERE c.code = 0;

    IF cardinality(v_ok) > 0 THEN
        DELETE FROM __SCHEMA__.messages m
            USING unnest(p_consumed_turn, p_consumed) AS c(k, id)
            WHERE c.k = ANY (v_ok) AND m.id = c.id AND m.instance_id = p_instance[c.k];

        SELECT count(*) INTO v_appends FROM unnest(v_ok) AS k WHERE p_history[k] IS NOT NULL;
        IF v_appends > 0 THEN
            INSERT INTO __SCHEMA__.history (instance_id, execution_id, first_event_index, events)
                SELECT p_instance[k], p_execution[k], p_expected_len[k], p_history[k]
                FROM unnest(v_ok) AS k WHERE p_history[k] IS NOT NULL
                ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_appended = ROW_COUNT;
            IF v_appended <> v_appends THEN
                RAISE EXCEPTION 'a history in this batch already has events at the appended position'
                    USING ERRCODE = 'DU409';
            END IF;
        END IF;

        IF cardinality(p_act_turn) > 0 THEN
            INSERT INTO __SCHEMA__.activities (instance_id, execution_id, task_id, name, input)
                SELECT p_instance[a.k], p_execution[a.k], a.task, a.name, a.input
                FROM unnest(p_act_turn, p_act_task, p_act_name, p_act_input) WITH ORDINALITY
                    AS a(k, task, name, input, ord)
                WHERE a.k = ANY (v_ok)
                ORDER BY a.ord;
        END IF;

        IF cardinality(p_timer_turn) > 0 THEN
            INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, timer_id, event)
                SELECT p_instance[t.k], p_execution[t.k], t.at, t.id, t.event
                FROM unnest(p_timer_turn, p_timer_id, p_timer_at, p_timer_event) WITH ORDINALITY
                    AS t(k, id, at, event, ord)
                WHERE t.k = ANY (v_ok)
                ORDER BY t.ord;
        END IF;

        IF cardinality(p_cancel_turn) > 0 THEN
            DELETE FROM __SCHEMA__.messages m
                USING unnest(p_cancel_turn, p_cancel) AS c(k, id)
                WHERE c.k = ANY (v_ok) AND m.instance_id = p_instance[c.k]
                  AND m.execution_id = p_execution[c.k] AND m.timer_id = c.id;
        END IF;

        SELECT coalesce(array_agg(p_instance[k]), '{}') INTO v_terminal
            FROM unnest(v_ok) AS k WHERE p_status[k] IN (2, 3, 4);
        IF cardinality(v_terminal) > 0 THEN
            DELETE FROM __SCHEMA__.messages WHERE instance_id = ANY (v_terminal);
            DELETE FROM __SCHEMA__.activities
                WHERE instance_id = ANY (v_terminal) AND NOT (lock_token IS NOT NULL AND locked_until > p_now);
        END IF;

        WITH updated AS (
            UPDATE __SCHEMA__.instances i SET
                status = p_status[u.k], output = p_output[u.k], failure = p_failure[u.k],
                custom_status = p_custom_status[u.k], updated_at = p_commit_time[u.k],
                completed_at = CASE WHEN p_status[u.k] IN (2, 3, 4) THEN p_commit_time[u.k] END,
                history_len = p_expected_len[u.k] + p_history_count[u.k],
                lock_token = NULL, locked_until = NULL,
                next_visible_at = (SELECT min(m.visible_at) FROM __SCHEMA__.messages m
                                   WHERE m.instance_id = i.instance_id)
            FROM unnest(v_ok) AS u(k)
            WHERE i.instance_id = p_instance[u.k]
            RETURNING u.k, i.next_visible_at IS NOT NULL AS more
        )
        SELECT coalesce(array_agg(updated.k) FILTER (WHERE updated.more), '{}') INTO v_more FROM updated;
    END IF;

    RETURN QUERY
        SELECT c.code, v_details[c.k], c.k = ANY (v_more)
        FROM unnest(v_codes) WITH ORDINALITY AS c(code, k)
        ORDER BY c.k;
END $$;

-- Creates a batch of new instances and queues their starts. Ids that are taken (by any
-- instance, finished or not) are left alone: r_created is false for them, and the client
-- sends those through create_instance, which replaces finished instances or reports the
-- unfinished one. One row per item, in order.
CREATE FUNCTION __SCHEMA__.create_instances(
    p_id text[], p_name text[], p_execution text[], p_input text[],
    p_created timestamptz[], p_start_event text[]
) RETURNS TABLE (r_created boolean) LANGUAGE plpgsql AS $$
DECLARE
    v_created integer[];
BEGIN
    WITH inserted AS (
        INSERT INTO __SCHEMA__.instances (
            instance_id, name, execution_id, status, input, created_at, updated_at, next_visible_at
        )
        SELECT n.id, n.name, n.execution, 0, n.input, n.created, n.created, '-infinity'
        FROM unnest(p_id, p_name, p_execution, p_input, p_created) WITH ORDINALITY
            AS n(id, name, execution, input, created, k)
        ORDER BY n.id
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id
    )
    SELECT coalesce(array_agg(n.k), '{}') INTO v_created
        FROM unnest(p_id) WITH ORDINALITY AS n(id, k)
        JOIN inserted ON inserted.instance_id = n.id;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        SELECT p_id[k], p_execution[k], '-infinity', p_start_event[k]
        FROM unnest(v_created) AS k ORDER BY k;
    RETURN QUERY SELECT n.k = ANY (v_created) FROM generate_subscripts(p_id, 1) AS n(k) ORDER BY n.k;
END $$;

-- Enqueues a batch of client messages (send_message for each). One row per item, in order:
-- -1 when the instance does not exist, its status when it has finished (nothing enqueued),
-- NULL when enqueued. Several messages to one instance keep their order.
CREATE FUNCTION __SCHEMA__.send_messages(p_id text[], p_event text[])
RETURNS TABLE (r_status smallint) LANGUAGE plpgsql AS $$
DECLARE
    v_codes smallint[];
BEGIN
    PERFORM 1 FROM __SCHEMA__.instances WHERE instance_id = ANY (p_id) ORDER BY instance_id FOR UPDATE;
    SELECT array_agg(CASE WHEN i.instance_id IS NULL THEN -1::smallint
                          WHEN i.status IN (2, 3, 4) THEN i.status END ORDER BY m.k)
        INTO v_codes
        FROM unnest(p_id) WITH ORDINALITY AS m(id, k)
        LEFT JOIN __SCHEMA__.instances i ON i.instance_id = m.id;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        SELECT p_id[k], NULL, '-infinity', p_event[k]
        FROM generate_subscripts(p_id, 1) AS k WHERE v_codes[k] IS NULL ORDER BY k;
    UPDATE __SCHEMA__.instances SET next_visible_at = '-infinity'
        WHERE instance_id IN (SELECT p_id[k] FROM generate_subscripts(p_id, 1) AS k WHERE v_codes[k] IS NULL)
          AND next_visible_at IS DISTINCT FROM '-infinity';
    RETURN QUERY SELECT v_codes[k] FROM generate_subscripts(p_id, 1) AS k ORDER BY k;
END $$;

-- Completes a batch of leased activities (complete_activity for each). One row per item, in
-- order: r_code 0 done, 4 lease lost; r_enqueued whether the instance got the message.
CREATE FUNCTION __SCHEMA__.complete_activities(
    p_id bigint[], p_token bigint[], p_now timestamptz, p_event text[]
) RETURNS TABLE (r_code integer, r_enqueued boolean) LANGUAGE plpgsql AS $$
DECLARE
    v_done integer[];
    v_enqueued integer[];
BEGIN
    -- The instance rows first, like every other writer of their inboxes (lock order).
    PERFORM 1 FROM __SCHEMA__.instances
        WHERE instance_id IN (SELECT instance_id FROM __SCHEMA__.activities WHERE id = ANY (p_id))
        ORDER BY instance_id FOR UPDATE;
    WITH deleted AS (
        DELETE FROM __SCHEMA__.activities a
            USING unnest(p_id, p_token) WITH ORDINALITY AS x(id, token, k)
            WHERE a.id = x.id AND a.lock_token = x.token AND a.locked_until > p_now
            RETURNING x.k, a.instance_id, a.execution_id
    ), enqueued AS (
        INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
            SELECT d.instance_id, d.execution_id, '-infinity', p_event[d.k]
            FROM deleted d JOIN __SCHEMA__.instances i ON i.instance_id = d.instance_id
            WHERE i.execution_id = d.execution_id AND i.status NOT IN (2, 3, 4)
            ORDER BY d.k
            RETURNING instance_id
    ), woken AS (
        UPDATE __SCHEMA__.instances SET next_visible_at = '-infinity'
            WHERE instance_id IN (SELECT instance_id FROM enqueued)
              AND next_visible_at IS DISTINCT FROM '-infinity'
    )
    SELECT coalesce(array_agg(d.k), '{}'),
           coalesce(array_agg(d.k) FILTER (WHERE d.instance_id IN (SELECT instance_id FROM enqueued)), '{}')
        INTO v_done, v_enqueued
        FROM deleted d;
    RETURN QUERY
        SELECT CASE WHEN k = ANY (v_done) THEN 0 ELSE 4 END, k = ANY (v_enqueued)
        FROM generate_subscripts(p_id, 1) AS k ORDER BY k;
END $$;
