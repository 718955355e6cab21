"""A run's configuration parsed once into the typed parts that the trainer's modules receive.

A :class:`~lipreg.train.config.TrainConfig` is a record of plain values (what checkpoints and
``config.json`` hold); :meth:`Plan.parse` checks it and derives from it, once, the norm
(:class:`lipreg.Norm`), the constraint (:class:`~lipreg.train.constraints.ConstraintSpec`),
the penalty's kind, the objective and the schedules. The trainer builds its parts from these,
never from the text specs again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from lipreg.norms import Norm
from lipreg.train.config import TrainConfig
from lipreg.train.constraints import ConstraintSpec
from lipreg.train.objectives import Objective, method
from lipreg.train.penalties import PENALTIES, PenaltyKind
from lipreg.train.schedules import Schedule
from lipreg.train.unused import settle


@dataclass(frozen=True)
class Plan:
    """The typed parts of a run (build one with :meth:`parse`)."""

    #: the configuration checked, with its specs spelt canonically, its loss resolved and the
    #: unused options a preset set at their defaults: what the run saves
    config: TrainConfig
    norm: Norm  #: the norm of the penalty (and of the c-transform's cost)
    constraint: ConstraintSpec  #: the constraint on the critic's weights
    penalty: PenaltyKind  #: the kind of ``--penalty``
    loss: Objective  #: the losses of both networks
    schedule: Schedule  #: learning rate, beta2, gamma and EMA over generator steps
    #: whether the logged critic gap estimates the Wasserstein-1 distance
    estimates_wasserstein: bool

    @classmethod
    def parse(
        cls, config: TrainConfig, given: Collection[str] = (), preset: Collection[str] = ()
    ) -> Plan:
        """The plan of ``config``; ``ValueError`` naming the first bad option (a
        :class:`~lipreg.train.objectives.PairingWarning` for a loss and a penalty known not
        to train together).

        Args:
            config: the run's configuration (checked here).
            given: the options given explicitly (field names, e.g. the command line's): one
                that the other choices make meaningless is refused whatever its value.
            preset: the options a preset set: those the explicit choices make meaningless
                are reset to their defaults (:mod:`lipreg.train.unused`).
        """
        checked, norm, constraint = config.parsed()
        settled, unused = settle(checked, given=given, preset=preset)
        for problem in unused:
            raise ValueError(problem)
        m = method(settled, norm, constraint)
        c = m.config
        return cls(
            config=c,
            norm=norm,
            constraint=constraint,
            penalty=PENALTIES[c.penalty],
            loss=m.objective,
            schedule=Schedule(c),
            estimates_wasserstein=m.estimates_wasserstein,
        )
