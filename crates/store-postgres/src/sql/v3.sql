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
