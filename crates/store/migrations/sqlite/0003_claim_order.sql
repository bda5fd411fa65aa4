-- The sink workers' claim walks the open deliveries of a sink oldest first and takes the first
-- one it may. Without this index SQLite gathered and sorted every open delivery of the sink on
-- each claim (quadratic over a backlog); with it, the walk is in index order and stops at the
-- first claimable row.
CREATE INDEX deliveries_claim ON deliveries (sink, id)
    WHERE state IN ('pending', 'in_flight');

-- A delivery's completion looks up the other deliveries of its document.
CREATE INDEX deliveries_document ON deliveries (document_id);
