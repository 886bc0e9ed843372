-- Schema version 4: what the dashboard needs to stay fast with millions of instances.
--
-- Lists filtered by status or by name, newest or oldest first, walk one of these indexes in
-- (created, id) order and stop after a page; counting by status is an index-only scan of
-- instances_status (no table rows are read while the visibility map is current).
CREATE INDEX instances_status ON __SCHEMA__.instances (status, created_at, instance_id);
CREATE INDEX instances_name ON __SCHEMA__.instances (name, created_at, instance_id);
