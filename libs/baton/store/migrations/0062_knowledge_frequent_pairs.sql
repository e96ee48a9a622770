-- Bot knowledge (issue 15): a number's most used pairs, in order. The answers a business gives
-- again and again are its canonical ones: retrieval ranks them whenever they share any word
-- with the question, even when the bounded candidate search (0061) would not select them.
-- A pair given once is not canonical: only repeated pairs are in the index.
CREATE INDEX knowledge_pairs_uses ON knowledge_pairs (phone_number_id, uses DESC) WHERE uses > 1;
