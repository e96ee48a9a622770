"""Router: conversation state, and who answers each customer message."""
