-- Answers to the sender (ANS MDN, or an error report to the configured mailbox); same meaning as
-- ../sqlite/0002_answers.sql.
--
-- A message owes its sender an answer once it reaches an outcome (filed, rejected, or waiting
-- for review): the transition that gets it there sets `answer` to 'due' in the same
-- transaction, so a crash can neither lose the duty nor answer twice for one outcome. The
-- engine then sends and records 'sent', 'skipped' (no answer asked, or none allowed) or
-- 'failed' (refused for good), with an event saying why.
ALTER TABLE messages ADD COLUMN answer TEXT
    CHECK (answer IS NULL OR answer IN ('due', 'sent', 'skipped', 'failed'));
CREATE INDEX messages_answer_due ON messages (id) WHERE answer = 'due';
