"""Evaluator kernels by op family; importing this package fills `hlo.evaluator.EVAL`."""

from hlo.eval_rules import control  # noqa: F401
from hlo.eval_rules import elementwise  # noqa: F401
from hlo.eval_rules import linalg  # noqa: F401
from hlo.eval_rules import movement  # noqa: F401
from hlo.eval_rules import random  # noqa: F401
from hlo.eval_rules import reduction  # noqa: F401
