"""Sphinx configuration of the skhier documentation site.

Build it (warnings are errors) from the project root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated from the docstrings (autosummary and numpydoc), the gallery from
``examples/`` (sphinx-gallery runs every ``examples/plot_*.py`` at build time), and the user
guide pages are Markdown (MyST). ``python docs/check_site.py`` then checks the built pages in a
headless Chromium.
"""

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # _sorting.py, the gallery's order
os.environ.setdefault("MPLBACKEND", "Agg")
# The gallery runs in this process. PyTensor installed by pip warns once that it found no BLAS
# (harmless for skhier, and filtered in the tests too); keep it out of the examples' output.
warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")

import skhier  # noqa: E402

project = "skhier"
author = "skhier developers"
copyright = "2026, skhier developers"  # noqa: A001
version = release = skhier.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb"]
html_static_path = ["_static"]
html_css_files = ["skhier.css"]

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc sections give the types
autodoc_member_order = "groupwise"
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Validate every documented docstring (a failed check is a warning, so an error with -W), except:
# ES01, SA01, EX01: an extended summary, See Also and Examples are welcome, not required;
# RT02: numpydoc's format lets a single return value have a name, and skhier names them.
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "RT02"}
# SS05 (summary starts with a third-person verb) takes a plural noun for a verb: "Draws of the
# log likelihood ..." (skhier.scoring.pointwise_log_likelihood), "Quantiles of the posterior
# predictive ..." (HierarchicalRanker.predict_quantiles).
numpydoc_validation_overrides = {"SS05": [r"^Draws of ", r"^Quantiles of "]}

# -- Markdown pages (docs/*.md are also read on GitHub) ----------------------------------------
myst_heading_anchors = 3

# -- Gallery ---------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every example is executed at build time
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "_sorting.ExampleOrder",
    "capture_repr": ("_repr_html_", "__repr__"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "write_computation_times": False,  # its page loads scripts from CDNs
    "reset_argv": "_sorting.no_arguments",
}

# -- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"skhier {release}"
html_short_title = "skhier"
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {"navigation_with_keys": True}
