-- Schema version 3: why an instance waits for another node (`Store::set_stall`).
--
-- A node that cannot run an instance's work (it lacks the orchestrator or an activity) leaves
-- the work to others and records the reason here, for status queries. Any change of the
-- instance's status or history clears it, in a trigger: the node that makes progress needs no
-- extra write, and the commit functions stay as they are. (The trigger fires only for updates
-- that name `status` or `history_len`, and its WHEN clause is false for every row without a
-- stall, so the hot commits pay a comparison.)
ALTER TABLE __SCHEMA__.instances ADD COLUMN stall_reason text, ADD COLUMN stall_since timestamptz;

CREATE FUNCTION __SCHEMA__.clear_stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.stall_reason := NULL;
    NEW.stall_since := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER progress_clears_stall BEFORE UPDATE OF status, history_len ON __SCHEMA__.instances
    FOR EACH ROW
    WHEN (OLD.stall_reason IS NOT NULL
          AND (NEW.status IS DISTINCT FROM OLD.status OR NEW.history_len IS DISTINCT FROM OLD.history_len))
    EXECUTE FUNCTION __SCHEMA__.clear_stall();

-- Rewinds a Failed instance (see `Store::rewind_instance` and `RewindCommit`): the execution's
-- history is replaced by p_history (one row, NULL when none is kept), the instance is p_status
-- again (Running, or Pending without history) with no output, failure or completion time, and
-- the plan's messages, activities (not one whose work item of this execution still exists),
-- timers and sub-orchestrations are queued. r_code 0 done, 1 no such instance, 5 conflict (not
-- Failed, or another execution or history length than planned; r_detail says which): then
-- nothing is written.
CREATE FUNCTION __SCHEMA__.rewind_instance(
    p_instance text, p_execution text, p_expected_len bigint, p_now timestamptz,
    p_history text, p_history_count bigint, p_status smallint,
    p_msg_event text[],
    p_act_task bigint[], p_act_name text[], p_act_input text[],
    p_timer_id bigint[], p_timer_at timestamptz[], p_timer_event text[],
    p_new_id text[], p_new_name text[], p_new_execution text[], p_new_input text[],
    p_new_parent_id text[], p_new_parent_execution text[], p_new_parent_task bigint[],
    p_new_created timestamptz[], p_new_start_event text[], p_new_failed_event text[],
    OUT r_code integer, OUT r_detail text
) LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
BEGIN
    r_code := 0;
    PERFORM 1 FROM __SCHEMA__.instances WHERE instance_id = ANY (ARRAY[p_instance] || p_new_id)
        ORDER BY instance_id FOR UPDATE;
    SELECT execution_id, history_len, status INTO v_row FROM __SCHEMA__.instances WHERE instance_id = p_instance;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF v_row.status <> 3 THEN
        r_code := 5;
        r_detail := format('instance %L is not Failed; only Failed instances can be rewound', p_instance);
        RETURN;
    END IF;
    IF v_row.execution_id <> p_execution OR v_row.history_len <> p_expected_len THEN
        r_code := 5;
        r_detail := format('instance %L changed while its rewind was planned', p_instance);
        RETURN;
    END IF;

    DELETE FROM __SCHEMA__.history WHERE instance_id = p_instance;
    IF p_history IS NOT NULL THEN
        INSERT INTO __SCHEMA__.history (instance_id, execution_id, first_event_index, events)
            VALUES (p_instance, p_execution, 0, p_history);
    END IF;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
        SELECT p_instance, p_execution, '-infinity', e.event
        FROM unnest(p_msg_event) WITH ORDINALITY AS e(event, ord) ORDER BY e.ord;
    INSERT INTO __SCHEMA__.activities (instance_id, execution_id, task_id, name, input)
        SELECT p_instance, p_execution, a.task, a.name, a.input
        FROM unnest(p_act_task, p_act_name, p_act_input) WITH ORDINALITY AS a(task, name, input, ord)
        WHERE NOT EXISTS (SELECT 1 FROM __SCHEMA__.activities x
                          WHERE x.instance_id = p_instance AND x.execution_id = p_execution AND x.task_id = a.task)
        ORDER BY a.ord;
    INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, timer_id, event)
        SELECT p_instance, p_execution, t.at, t.id, t.event
        FROM unnest(p_timer_id, p_timer_at, p_timer_event) WITH ORDINALITY AS t(id, at, event, ord)
        ORDER BY t.ord;
    -- Children started again; an id held by an unfinished instance reports back to this one.
    FOR k IN 1 .. coalesce(array_length(p_new_id, 1), 0) LOOP
        IF __SCHEMA__.create_instance(
            p_new_id[k], p_new_name[k], p_new_execution[k], p_new_input[k],
            p_new_parent_id[k], p_new_parent_execution[k], p_new_parent_task[k],
            p_new_created[k], p_new_start_event[k], p_now) IS NOT NULL
           AND p_new_failed_event[k] IS NOT NULL THEN
            INSERT INTO __SCHEMA__.messages (instance_id, execution_id, visible_at, event)
                VALUES (p_instance, p_execution, '-infinity', p_new_failed_event[k]);
        END IF;
    END LOOP;
    UPDATE __SCHEMA__.instances SET
        status = p_status, output = NULL, failure = NULL, completed_at = NULL, updated_at = p_now,
        history_len = p_history_count, lock_token = NULL, locked_until = NULL,
        next_visible_at = (SELECT min(m.visible_at) FROM __SCHEMA__.messages m WHERE m.instance_id = p_instance)
    WHERE instance_id = p_instance;
END $$;
