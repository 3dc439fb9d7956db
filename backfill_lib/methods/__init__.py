"""Every method the library evaluates, one module each, and the registry they join.

:mod:`.registry` defines what a method is and holds the table; each other module holds one
method (its loss, when it has one, its defaults, its merge rule, its look) and registers it
on import. Importing this package registers them all.
"""

# The order of these imports is the registry's order, and so the order of every table,
# legend and figure: references, the online merge, the compatible methods, the
# transformations (reverse, then forward).
# isort: off
from . import references, drm  # noqa: F401
from . import bct, advbct, ract, l2  # noqa: F401
from . import rt, rt_mc, closed_form, fct  # noqa: F401

# isort: on
