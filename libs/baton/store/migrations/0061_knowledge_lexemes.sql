-- Bot knowledge (issue 15): how many of a number's distinct pairs hold each lexeme of their
-- question. Retrieval reads it to choose a bounded candidate search (baton.knowledge.retrieval):
-- a question's rare words select candidates alone, its common words only two together, so a
-- retrieval at a million messages ranks hundreds of pairs, not every pair sharing "pedido".
-- The indexing pass adds each new pair's lexemes in the same statement that stores the pair.

CREATE TABLE knowledge_lexemes (
    phone_number_id  text        NOT NULL,
    lexeme           text        NOT NULL,
    pairs            integer     NOT NULL,
    PRIMARY KEY (phone_number_id, lexeme)
);

INSERT INTO knowledge_lexemes (phone_number_id, lexeme, pairs)
SELECT p.phone_number_id, w.lexeme, count(*)
  FROM knowledge_pairs p, unnest(tsvector_to_array(p.tsv)) AS w(lexeme)
 GROUP BY p.phone_number_id, w.lexeme;
