//! Rule codes of the findings this crate produces.

use relais_core::RuleCode;

/// A Schematron `<assert>` failed and its role is `error`/`fatal` or absent: the document does
/// not conform to the ANS rule quoted in the finding's assertion text.
pub const SCH_ASSERT_FAILED: RuleCode = RuleCode::new("SCH-ASSERT-FAILED");
/// A Schematron `<report>` fired, or an `<assert>` of role `warning`/`info` failed: worth a look,
/// does not make the document invalid (unless the report itself says role `error`).
pub const SCH_REPORT: RuleCode = RuleCode::new("SCH-REPORT");
/// A schematron check could not be evaluated (e.g. a value set file missing from the pack, an
/// XPath type error on unexpected content): the rule was not verified. A warning, as the
/// document was not shown to be wrong; identical errors on several nodes are reported once.
pub const SCH_RULE_ERROR: RuleCode = RuleCode::new("SCH-RULE-ERROR");
/// The schematron includes a file that is not in the pack: the rules it holds were not run.
/// Reported once per validation so that a partial check is never mistaken for a full one.
pub const SCH_INCLUDE_MISSING: RuleCode = RuleCode::new("SCH-INCLUDE-MISSING");
