"""Off-policy evaluation: estimators, logged decisions, target policies and the promotion gate.

Works on logged events alone; nothing here imports the simulator.
"""
