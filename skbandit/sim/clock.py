"""The simulated school's clock: which sessions are open and who acts in the current slot.

:class:`SchoolTimetable` walks through the school year one ``slot_seconds`` time slot at a
time for :class:`~skbandit.sim.env.SchoolEnv`. Sessions (drawn by
:func:`~skbandit.sim.world.build_world`, sorted by start time) open when the clock reaches
their start; the students whose next attempt falls into the current slot act, at most one
attempt each. After a step, :meth:`SchoolTimetable.finish_step` moves each acting session's
next attempt to when the student is ready again (never before the next slot), closes the
sessions that have made all their attempts and skips ahead to the next slot in which
somebody acts.
"""

import numpy as np

from skbandit.sim.world import World


class SchoolTimetable:
    """Open sessions and the students who act in the current time slot.

    Parameters
    ----------
    world : World
        The school; its sessions (``session_start`` sorted ascending, ``session_length``)
        are what the timetable opens and closes.
    slot_seconds : float
        Width of one time slot (one step) in seconds.

    Attributes
    ----------
    acting : ndarray of int of shape (n_acting,)
        Positions, among the open sessions, of the sessions that act in the current slot
        (empty when the school year is over).

    Examples
    --------
    >>> from skbandit.sim.world import SchoolConfig, build_world
    >>> config = SchoolConfig(n_students=10, seed=0)
    >>> timetable = SchoolTimetable(build_world(config, np.random.default_rng(0)),
    ...                             config.slot_seconds)
    >>> bool(timetable.sessions.size > 0 and (timetable.attempts == 0).all())
    True
    """

    def __init__(self, world: World, slot_seconds: float):
        self._world = world
        self._width = slot_seconds
        self._next_session = 0
        self._active = np.empty(0, np.int64)
        self._time = np.empty(0)
        self._j = np.empty(0, np.int64)
        self._advance()

    @property
    def sessions(self) -> np.ndarray:
        """Session index (into the world's session arrays) of each acting student."""
        return self._active[self.acting]

    @property
    def times(self) -> np.ndarray:
        """Epoch seconds of each acting student's attempt (within the current slot)."""
        return self._time[self.acting]

    @property
    def attempts(self) -> np.ndarray:
        """Attempts each acting session has made before this one (0 for a new session)."""
        return self._j[self.acting]

    @property
    def slot_start(self) -> float:
        """Epoch seconds at which the current slot begins (inf when the year is over)."""
        return np.inf if self.acting.size == 0 else self._slot * self._width

    def finish_step(self, next_time: np.ndarray) -> None:
        """Close the current slot and move to the next one in which somebody acts.

        Parameters
        ----------
        next_time : ndarray of float of shape (n_acting,)
            When each acting student could make their next attempt (epoch seconds); an
            attempt never happens before the next slot.
        """
        slot_end = (self._slot + 1) * self._width
        self._time[self.acting] = np.maximum(next_time, slot_end)
        self._j[self.acting] += 1
        keep = self._j < self._world.session_length[self._active]
        self._active, self._time, self._j = self._active[keep], self._time[keep], self._j[keep]
        self._advance()

    def _advance(self) -> None:
        """Find the next slot in which somebody acts (opening sessions as time passes)."""
        starts, width = self._world.session_start, self._width
        while True:
            current = np.floor(self._time / width).min() if self._time.size else np.inf
            if self._next_session < starts.size:
                upcoming = np.floor(starts[self._next_session] / width)
                if upcoming <= current:
                    stop = np.searchsorted(starts, (upcoming + 1) * width)
                    new = np.arange(self._next_session, stop)
                    self._next_session = stop
                    self._active = np.concatenate([self._active, new])
                    self._time = np.concatenate([self._time, starts[new]])
                    self._j = np.concatenate([self._j, np.zeros(new.size, np.int64)])
                    continue
            break
        if not np.isfinite(current):
            self.acting = np.empty(0, np.int64)
            return
        self._slot = current
        self.acting = np.flatnonzero(np.floor(self._time / width) == current)
