-- The sink workers' claim walks the open deliveries of a sink oldest first and takes the first
-- one it may (same as ../sqlite/0003_claim_order.sql).
CREATE INDEX deliveries_claim ON deliveries (sink, id)
    WHERE state IN ('pending', 'in_flight');

-- A delivery's completion looks up the other deliveries of its document.
CREATE INDEX deliveries_document ON deliveries (document_id);
