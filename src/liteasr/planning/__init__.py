"""Planning: which rank each projection keeps (threshold rule, measured damage, budgets, costs)."""
