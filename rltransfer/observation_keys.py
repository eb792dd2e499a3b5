"""The entries of an agent's observation, named once.

rltransfer shows an agent a task's observation in a ``Dict`` beside how it knows the task; the envs that build
it (:mod:`rltransfer.envs.conditioning`, :mod:`rltransfer.envs.multitask`), the agents that read it
(:mod:`rltransfer.agents`) and the pipeline (normalisation, bundles, transfer) all import these names from here.
A leaf that imports nothing but the standard library, so that ``rltransfer.envs`` and ``rltransfer.agents``, which import nothing else of
rltransfer's but themselves, may import it.
"""

from typing import Final

OBS: Final = "obs"
"""The task's own observation (a vector, an image, a discrete value), in the tasks' shared layout (padded where
their sizes differ)."""

CONTEXT: Final = "context"
"""The conditioning vector: the task's normalised parameters (conditioning ``context``) or its one-hot among the
source tasks (``onehot``); absent with conditioning ``none``."""

TASK: Final = "task"
"""The one-hot of the agent's head for the task: it routes each sample to its head (and its input stem), and no
encoder reads it."""

ENCODED = (OBS, CONTEXT)
"""The entries an encoder reads, in the order it concatenates them."""

FLAT_ORDER = (OBS, CONTEXT, TASK)
"""The entries of a flat observation (every entry a vector, concatenated in one Box), in order: what an encoder
reads, in its order, then the routing."""
