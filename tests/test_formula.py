import pytest

from skhier.formula import GroupTerm, parse_formula, translate_formula


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("Ht ~ 0 + H0:(1|gene/sgRNA)", "Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)"),
        ("Ht ~ 0 + H0:(1|gene)", "Ht ~ 0 + H0 + (0 + H0|gene)"),
        ("y ~ x + x:(1|g)", "y ~ x + (0 + x|g)"),
        ("y ~ x:( 1 | a / b )", "y ~ x + (0 + x|a / b)"),
        ("y ~ x + (1|g)", "y ~ x + (1|g)"),
    ],
)
def test_translate(formula, expected):
    assert translate_formula(formula) == expected


def test_translate_two_groupings_add_common_term_once():
    out = translate_formula("y ~ 0 + x:(1|a) + x:(1|b)")
    assert out == "y ~ 0 + x + (0 + x|a) + (0 + x|b)"


def test_parse_nested_slopes():
    p = parse_formula("Ht ~ 0 + H0:(1|gene/sgRNA)")
    assert p.response == "Ht"
    assert not p.intercept
    assert p.common == ("H0",)
    assert p.group_terms == (GroupTerm("H0", ("gene",)), GroupTerm("H0", ("gene", "sgRNA")))
    assert p.factors == ("gene", "gene:sgRNA")
    assert p.data_columns == ("Ht", "H0", "gene", "sgRNA")
    assert p.unsupported == ()


def test_parse_varying_intercept_and_slope():
    p = parse_formula("y ~ x + (x|g)")
    assert p.intercept and p.columns == ("Intercept", "x")
    assert [t.name for t in p.group_terms] == ["1|g", "x|g"]


def test_unsupported_terms_are_reported_not_rejected():
    p = parse_formula("y ~ np.log(x) + C(z) + (1|g)")
    assert len(p.unsupported) == 2
    assert "np.log(x)" in p.unsupported[0]


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("", "non-empty string"),
        ("x + (1|g)", "has no response"),
        ("y ~ x +", "does not parse"),
        ("y ~ (1|)", "does not parse"),
        # a typo in the x:(1|g) spelling: formulae drops the term without a word
        (
            "Ht ~ 0 + H0:(2|gene/sgRNA)",
            r"has the term 'H0:\(2\|gene/sgRNA\)', an interaction with a group-specific term.*"
            r"written 'H0:\(1\|gene/sgRNA\)' .* or '\(0 \+ H0\|gene/sgRNA\)'",
        ),
        ("Ht ~ H0:(x|gene)", r"has the term 'H0:\(x\|gene\)'.*'H0:\(1\|gene\)'"),
        ("Ht ~ (1|gene):H0", r"has the term '\(1\|gene\):H0'"),
        ("Ht ~ H0*(1|gene)", r"has the term 'H0\*\(1\|gene\)'"),
        ("y ~ 0 + (2|g)", r"has the number 2 where a column name belongs; a group-specific"),
        ("y ~ 2 + x", r"has the number 2 where a column name belongs; the intercept is"),
        ("y ~ x + (1|2)", r"has the number 2 where a column name belongs; the grouping factor"),
    ],
)
def test_bad_formulas(formula, match):
    with pytest.raises(ValueError, match=match):
        parse_formula(formula)


def test_bad_formula_type():
    with pytest.raises(ValueError, match="non-empty string"):
        parse_formula(3)
