"""Factorization: each dense projection replaced by two thin matrices from the plan."""
