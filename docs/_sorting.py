"""The order of the gallery's examples (sphinx-gallery takes it by name from conf.py)."""

ORDER = (
    "plot_forum_question.py",
    "plot_deep_hierarchy.py",
    "plot_count_screen.py",
    "plot_pooling.py",
)


class ExampleOrder:
    """Sort key of sphinx-gallery: the examples in ``ORDER`` first, in that order, then by name.

    Parameters
    ----------
    src_dir : str
        The gallery's source folder (unused).
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        """Return the sort key of an example's file name."""
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self):
        return f"ExampleOrder({ORDER})"


def no_arguments(gallery_conf, script_vars):
    """Run every example without command-line arguments (its figures stay open)."""
    return []
