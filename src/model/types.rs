//! MISP's attribute type/category matrix.
//!
//! MISP refuses an attribute whose `(category, type)` pair is not listed in its
//! matrix, and fills in `category`/`to_ids` from per-type defaults when a client
//! omits them. To stay byte-compatible with MISP peers we do not re-type that
//! table by hand: we ship MISP's own `describeTypes.json` (vendored from PyMISP,
//! see `data/NOTICE.md`) and derive every lookup from it, so updating the matrix
//! is a file copy, not a code change.
//!
//! The document is parsed once, on first use, into lookup tables that live for
//! the rest of the process.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

/// The vendored MISP document, verbatim.
const DESCRIBE_TYPES_JSON: &str = include_str!("data/describeTypes.json");

/// Per-type defaults from `sane_defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The MISP type name, e.g. `ip-dst` or `filename|sha256`.
    pub name: String,
    /// Category MISP assigns when a client sends none.
    pub default_category: String,
    /// `to_ids` MISP assigns when a client sends none.
    pub to_ids: bool,
}

/// Parsed, indexed form of `describeTypes.json`.
struct Matrix {
    /// Type names in file order (MISP's UI and API list them in this order).
    types: Vec<String>,
    /// Category names in file order.
    categories: Vec<String>,
    info: HashMap<String, TypeInfo>,
    /// category -> allowed types.
    allowed: HashMap<String, HashSet<String>>,
}

#[derive(Deserialize)]
struct Document {
    result: DocumentResult,
}

#[derive(Deserialize)]
struct DocumentResult {
    sane_defaults: HashMap<String, SaneDefault>,
    types: Vec<String>,
    categories: Vec<String>,
    category_type_mappings: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct SaneDefault {
    default_category: String,
    to_ids: IntOrBool,
}

/// MISP writes `to_ids` as `0`/`1` in this file, but as JSON booleans
/// elsewhere; accept both so a future re-vendoring does not break us.
#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrBool {
    Bool(bool),
    Int(i64),
}

impl IntOrBool {
    fn as_bool(&self) -> bool {
        match self {
            IntOrBool::Bool(b) => *b,
            IntOrBool::Int(i) => *i != 0,
        }
    }
}

fn parse_matrix(json: &str) -> Result<Matrix, serde_json::Error> {
    let doc: Document = serde_json::from_str(json)?;
    let r = doc.result;
    let info = r
        .sane_defaults
        .into_iter()
        .map(|(name, d)| {
            let ti = TypeInfo {
                name: name.clone(),
                default_category: d.default_category,
                to_ids: d.to_ids.as_bool(),
            };
            (name, ti)
        })
        .collect();
    let allowed = r
        .category_type_mappings
        .into_iter()
        .map(|(cat, types)| (cat, types.into_iter().collect()))
        .collect();
    Ok(Matrix {
        types: r.types,
        categories: r.categories,
        info,
        allowed,
    })
}

fn matrix() -> &'static Matrix {
    static MATRIX: OnceLock<Matrix> = OnceLock::new();
    MATRIX.get_or_init(|| {
        // Invariant: the input is a compile-time constant (vendored file baked in
        // with `include_str!`), not user data, and the unit test
        // `vendored_document_parses` parses exactly these bytes. A parse failure
        // can therefore only come from a broken re-vendoring, which that test
        // catches before release; panicking here is the honest outcome for a
        // build that shipped a corrupt static table.
        #[allow(
            clippy::expect_used,
            reason = "a compile-time constant, parsed by a unit test"
        )]
        parse_matrix(DESCRIBE_TYPES_JSON).expect("vendored describeTypes.json must parse")
    })
}

/// Defaults for a MISP attribute type, or `None` if MISP does not know the type.
pub fn type_info(attr_type: &str) -> Option<&'static TypeInfo> {
    matrix().info.get(attr_type)
}

/// Whether MISP knows `attr_type` (case-sensitive, as in MISP).
pub fn is_known_type(attr_type: &str) -> bool {
    matrix().info.contains_key(attr_type)
}

/// Whether MISP knows `category` (case-sensitive, as in MISP).
pub fn is_known_category(category: &str) -> bool {
    matrix().allowed.contains_key(category)
}

/// Whether MISP accepts the `(category, attr_type)` pair
/// (`MispAttribute::validateTypeValue`). Unknown categories allow nothing.
pub fn category_allows(category: &str, attr_type: &str) -> bool {
    matrix()
        .allowed
        .get(category)
        .is_some_and(|types| types.contains(attr_type))
}

/// All MISP attribute types, in the vendored file's order.
pub fn types() -> &'static [String] {
    &matrix().types
}

/// All MISP categories, in the vendored file's order.
pub fn categories() -> &'static [String] {
    &matrix().categories
}

/// The vendored document verbatim, so `/attributes/describeTypes.json` can
/// serve exactly what MISP would (PyMISP and other clients read it).
pub fn describe_types_json() -> &'static str {
    DESCRIBE_TYPES_JSON
}

/// Whether values of this type are stored as `value1|value2`.
///
/// Mirrors `MispAttribute::getCompositeTypes`: every type whose name holds a
/// `|`, plus `malware-sample`, whose value is `filename|md5` although its name
/// has no pipe.
pub fn is_composite(attr_type: &str) -> bool {
    attr_type.contains('|') || attr_type == "malware-sample"
}

/// Types MISP never correlates, because their values (a port, a gender, a
/// boolean…) would link unrelated events en masse.
///
/// List from MISP's `Correlation` model: comment, http-method, aba-rtn,
/// gender, counter, integer, float, port, nationality, cortex, boolean,
/// anonymised.
pub fn is_non_correlating(attr_type: &str) -> bool {
    matches!(
        attr_type,
        "comment"
            | "http-method"
            | "aba-rtn"
            | "gender"
            | "counter"
            | "integer"
            | "float"
            | "port"
            | "nationality"
            | "cortex"
            | "boolean"
            | "anonymised"
    )
}

/// Whether `value2` of a composite attribute takes part in correlation.
///
/// MISP correlates both halves of composite values, except for
/// `ip-src|port`, `ip-dst|port` and `hostname|port`, where a shared port
/// number (443…) says nothing. Non-composite types have no second half, so
/// this is `false` for them.
pub fn correlates_second_half(attr_type: &str) -> bool {
    is_composite(attr_type) && !matches!(attr_type, "ip-src|port" | "ip-dst|port" | "hostname|port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_document_parses() {
        let m = parse_matrix(DESCRIBE_TYPES_JSON).expect("vendored file must parse");
        assert!(m.types.len() >= 190, "got {} types", m.types.len());
        assert_eq!(m.categories.len(), 16);
    }

    #[test]
    fn matrix_is_self_consistent() {
        // Every listed type has defaults, and every default category allows
        // its own type: otherwise "category omitted -> default" would produce
        // an attribute MISP itself rejects.
        for t in types() {
            let info = type_info(t).unwrap_or_else(|| panic!("no sane_default for {t}"));
            assert_eq!(&info.name, t);
            assert!(is_known_category(&info.default_category), "{t}");
            assert!(
                category_allows(&info.default_category, t),
                "default category {} does not allow {t}",
                info.default_category
            );
        }
        for c in categories() {
            assert!(is_known_category(c));
        }
    }

    #[test]
    fn lookups() {
        assert!(is_known_type("ip-dst"));
        assert!(is_known_type("filename|sha256"));
        assert!(!is_known_type("IP-DST"));
        assert!(!is_known_type("nonsense"));
        assert!(is_known_category("Network activity"));
        assert!(!is_known_category("network activity"));

        let md5 = type_info("md5").expect("md5 known");
        assert_eq!(md5.default_category, "Payload delivery");
        assert!(md5.to_ids);
        let comment = type_info("comment").expect("comment known");
        assert_eq!(comment.default_category, "Other");
        assert!(!comment.to_ids);

        assert!(category_allows("Network activity", "ip-dst"));
        assert!(category_allows("Payload delivery", "md5"));
        assert!(!category_allows("Financial fraud", "ip-dst"));
        assert!(!category_allows("No such category", "ip-dst"));
        assert!(!category_allows("Network activity", "no-such-type"));
    }

    #[test]
    fn order_is_file_order() {
        assert_eq!(types()[0], "md5");
        assert_eq!(categories()[0], "Internal reference");
        assert_eq!(categories().last().map(String::as_str), Some("Other"));
    }

    #[test]
    fn raw_document_is_served_verbatim() {
        let v: serde_json::Value = serde_json::from_str(describe_types_json()).expect("valid JSON");
        assert!(v["result"]["category_type_mappings"].is_object());
    }

    #[test]
    fn composite_and_correlation_flags() {
        assert!(is_composite("filename|md5"));
        assert!(is_composite("ip-dst|port"));
        assert!(is_composite("malware-sample"));
        assert!(!is_composite("md5"));
        // Every composite type in the matrix has exactly one pipe in its name.
        for t in types() {
            if t.contains('|') {
                assert_eq!(t.matches('|').count(), 1, "{t}");
            }
        }

        for t in [
            "comment",
            "http-method",
            "aba-rtn",
            "gender",
            "counter",
            "integer",
            "float",
            "port",
            "nationality",
            "cortex",
            "boolean",
            "anonymised",
        ] {
            assert!(is_non_correlating(t), "{t}");
            assert!(is_known_type(t), "{t} should be a MISP type");
        }
        assert!(!is_non_correlating("ip-dst"));

        assert!(!correlates_second_half("ip-src|port"));
        assert!(!correlates_second_half("ip-dst|port"));
        assert!(!correlates_second_half("hostname|port"));
        assert!(correlates_second_half("domain|ip"));
        assert!(correlates_second_half("filename|sha256"));
        assert!(correlates_second_half("malware-sample"));
        assert!(!correlates_second_half("md5"));
    }
}
