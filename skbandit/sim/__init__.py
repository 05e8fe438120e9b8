"""The simulated school: world, clock, outcomes, records, running context and environment.

:func:`~skbandit.sim.generate.simulate_school` logs a school year with the rule+epsilon
policy; :class:`~skbandit.sim.env.SchoolEnv` plays any policy against the same world.
"""
