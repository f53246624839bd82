//! What a tag name may be. Tags decide policy — `tlp:red` keeps an event home,
//! `exercise:*` keeps drill data out of IDS exports, `pap:*` restricts action —
//! so a name that *looks* like a policy tag must *be* one, byte for byte, or be
//! refused. Every name entering the node (API, import, sync) is therefore:
//!
//! 1. refused if it holds a control or invisible (format) character — a NUL, a
//!    zero-width space, a bidi override — which no honest tag needs;
//! 2. normalised to Unicode NFKC (full-width `ｔｌｐ：ｒｅｄ` becomes `tlp:red`,
//!    ligatures and compatibility forms fold to their plain letters) and trimmed;
//! 3. refused if, after that, it is a confusable look-alike of a policy tag: a
//!    name whose Cyrillic or Greek letters, read as the Latin letters they
//!    resemble, spell a `tlp:`, `pap:` or `exercise` tag (`tlp:rеd` with a
//!    Cyrillic `е`).
//!
//! Matching (visibility, federation, exports) then works on the stored,
//! normalised name, so no two spellings of one policy tag exist.

use icu_normalizer::ComposingNormalizerBorrowed;

/// The tag namespaces that carry policy.
const POLICY_PREFIXES: [&str; 3] = ["tlp:", "pap:", "exercise"];

/// Why a tag name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagNameError {
    #[error("tag names must not contain control or invisible characters (found U+{0:04X})")]
    Invisible(u32),
    #[error("a tag name must not be empty")]
    Empty,
    #[error("{name:?} looks like the policy tag {looks_like:?} but is spelled with non-Latin letters; use the real tag")]
    Confusable { name: String, looks_like: String },
}

/// The name as stored: checked, NFKC-normalised and trimmed.
pub fn normalise(name: &str) -> Result<String, TagNameError> {
    if let Some(c) = name.chars().find(|c| invisible(*c)) {
        return Err(TagNameError::Invisible(u32::from(c)));
    }
    let nfkc = ComposingNormalizerBorrowed::new_nfkc().normalize(name);
    let out = nfkc.trim().to_owned();
    if out.is_empty() {
        return Err(TagNameError::Empty);
    }
    if !out.is_ascii() {
        let folded = out.to_lowercase();
        let skeleton: String = folded.chars().map(latin_look_alike).collect();
        if skeleton != folded && POLICY_PREFIXES.iter().any(|p| skeleton.starts_with(p)) {
            return Err(TagNameError::Confusable {
                name: out,
                looks_like: skeleton,
            });
        }
    }
    Ok(out)
}

/// Control characters (Cc) and the invisible format characters (Cf) that can
/// hide inside a name: zero-width space/joiners, bidi controls, the BOM, the
/// soft hyphen, word joiners and the like.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{E0000}'..='\u{E007F}')
}

/// The Latin letter a lower-case Cyrillic or Greek letter is commonly mistaken
/// for (Unicode's confusables for the letters that spell policy tags), or the
/// character itself.
fn latin_look_alike(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' | 'ё' => 'e',
        'һ' | 'н' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'п' | 'η' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'ᴢ' => 'z',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_compatibility_forms_fold() {
        assert_eq!(normalise("  tlp:red ").unwrap(), "tlp:red");
        assert_eq!(normalise("ｔｌｐ：ｒｅｄ").unwrap(), "tlp:red");
        assert_eq!(
            normalise("misp-galaxy:threat-actor=\"APT 28\"").unwrap(),
            "misp-galaxy:threat-actor=\"APT 28\""
        );
        // Non-Latin names that imitate nothing are welcome.
        assert_eq!(normalise("кампания:весна").unwrap(), "кампания:весна");
        assert_eq!(normalise("日本語タグ").unwrap(), "日本語タグ");
    }

    #[test]
    fn invisible_characters_are_refused() {
        for bad in [
            "tlp:red\0",
            "tlp:\u{200B}red",
            "tlp:red\u{202E}",
            "\u{FEFF}tlp:red",
            "a\nb",
        ] {
            assert!(
                matches!(normalise(bad), Err(TagNameError::Invisible(_))),
                "{bad:?}"
            );
        }
        assert_eq!(normalise("   "), Err(TagNameError::Empty));
    }

    #[test]
    fn look_alikes_of_policy_tags_are_refused() {
        for bad in [
            "tlp:rеd",
            "tlр:red",
            "ТLP:RED",
            "pаp:red",
            "еxercise:cyber-europe",
        ] {
            assert!(
                matches!(normalise(bad), Err(TagNameError::Confusable { .. })),
                "{bad:?}"
            );
        }
    }
}
