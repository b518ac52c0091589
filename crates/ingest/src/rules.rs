//! Rules: which checks apply to which uploaded file, chosen by file-name
//! pattern, per account first and then globally, and what one file's checks
//! are once its rule and profile are known ([`CheckPlan`]).
//!
//! The rules are configuration (a later issue reads them from
//! `config/ferry.toml`); this module only deserialises them and turns a rule
//! plus a file name into a plan. It never reads files. A typo in a rule must
//! stop the start with the key named, so every field is validated while
//! deserialising and unknown keys are refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use crate::charset::CharsetRule;
use crate::delimiter::DelimiterRule;
use crate::file_name::FileName;
use crate::problem::{Problem, ProblemKind};
use crate::profile::{
    CLEVER_FILES, ONEROSTER_11_FILES, ONEROSTER_MANIFEST_COLUMNS, Profile, clever_file,
    oneroster_file,
};

/// Rules that could not be read.
#[derive(Debug, Error)]
pub enum RulesError {
    /// Not valid TOML, an unknown key, or a value that is not allowed; the
    /// message names the key.
    #[error("invalid ingest rules: {0}")]
    Toml(#[from] toml::de::Error),
}

/// Every rule: global ones and per-account ones. See the crate documentation
/// for the TOML shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Global rules, tried in order after the account's own.
    #[serde(default)]
    pub rules: Vec<FileRule>,
    /// Per-account rules by account name, tried first.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountRules>,
}

/// One account's rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRules {
    /// Tried in order before the global rules.
    #[serde(default)]
    pub rules: Vec<FileRule>,
}

/// The checks for files whose name matches `pattern`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// File-name pattern: `*` matches any run of characters, `?` one;
    /// case-insensitive; matched against the name as uploaded (date suffix
    /// included), so `students*.csv` matches `students_20261123.csv`.
    pub pattern: FilePattern,
    /// Built-in profile.
    #[serde(default)]
    pub profile: Profile,
    /// Character set required, or `auto`.
    #[serde(default)]
    pub charset: CharsetRule,
    /// Delimiter required, or `auto`.
    #[serde(default)]
    pub delimiter: DelimiterRule,
    /// Columns the header must have, on top of the profile's.
    #[serde(default)]
    pub required_columns: Vec<String>,
    /// Largest file accepted.
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

impl Default for FileRule {
    /// The rule used when none matches: generic CSV, everything detected, no
    /// required columns, no size limit.
    fn default() -> Self {
        Self {
            pattern: FilePattern("*".into()),
            profile: Profile::Generic,
            charset: CharsetRule::Auto,
            delimiter: DelimiterRule::Auto,
            required_columns: Vec::new(),
            max_size: None,
        }
    }
}

impl Rules {
    /// Reads rules from TOML text (the shape in the crate documentation).
    ///
    /// # Errors
    /// [`RulesError::Toml`] naming the bad key and why.
    pub fn from_toml_str(text: &str) -> Result<Self, RulesError> {
        Ok(toml::from_str(text)?)
    }

    /// The first of the account's rules whose pattern matches `file_name`,
    /// else the first matching global rule; `None` when nothing matches (the
    /// caller then uses [`FileRule::default`], as [`Self::plan_for`] does).
    #[must_use]
    pub fn rule_for(&self, account: Option<&str>, file_name: &str) -> Option<&FileRule> {
        let account_rules = account
            .and_then(|account| self.accounts.get(account))
            .map(|account| account.rules.as_slice())
            .unwrap_or_default();
        account_rules
            .iter()
            .chain(&self.rules)
            .find(|rule| rule.pattern.matches(file_name))
    }

    /// The checks for `file_name` uploaded by `account`.
    #[must_use]
    pub fn plan_for(&self, account: Option<&str>, file_name: &str) -> CheckPlan {
        match self.rule_for(account, file_name) {
            Some(rule) => CheckPlan::new(file_name, rule),
            None => CheckPlan::new(file_name, &FileRule::default()),
        }
    }
}

/// A validated file-name pattern (`*` and `?` only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FilePattern(String);

impl FilePattern {
    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `file_name` matches, ignoring case.
    #[must_use]
    pub fn matches(&self, file_name: &str) -> bool {
        let pattern: Vec<char> = self.0.to_lowercase().chars().collect();
        let name: Vec<char> = file_name.to_lowercase().chars().collect();
        glob_matches(&pattern, &name)
    }
}

impl TryFrom<String> for FilePattern {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() {
            return Err("a pattern must not be empty (use \"*\" for every file)".into());
        }
        if value.contains(['/', '\\']) {
            return Err(format!(
                "pattern {value:?} contains a path separator; patterns match file names only"
            ));
        }
        if value.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "pattern {value:?}: only * and ? are supported (no [..] or {{..}})"
            ));
        }
        Ok(Self(value))
    }
}

impl fmt::Display for FilePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for FilePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

fn glob_matches(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, n));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            n = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A size in bytes, written in configuration as a number of bytes or as text
/// with a unit: `"500 MB"`, `"2GiB"`, `"750kB"` (KB/MB/GB/TB are powers of
/// 1000, KiB/MiB/GiB/TiB powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "ByteSizeInput")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeInput {
    Bytes(u64),
    Text(String),
}

impl TryFrom<ByteSizeInput> for ByteSize {
    type Error = String;

    fn try_from(input: ByteSizeInput) -> Result<Self, Self::Error> {
        let bytes = match input {
            ByteSizeInput::Bytes(bytes) => bytes,
            ByteSizeInput::Text(text) => parse_byte_size(&text)?,
        };
        if bytes == 0 {
            return Err("a size limit must be more than 0 bytes".into());
        }
        Ok(Self(bytes))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    /// `"500 MB"`, `"2 GiB"`, `"1048576"`: more than 0 bytes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::try_from(ByteSizeInput::Text(text.to_owned()))
    }
}

fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "size {text:?}: unknown unit {:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
                unit.trim()
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("size {text:?} does not start with a number"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Everything the checks need to know about one file: its name split into
/// logical name and date suffix, and the settings of its rule and profile.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The file name, logical name and date suffix.
    pub file_name: FileName,
    /// The pattern of the rule that chose these checks (`*` for the default).
    pub rule_pattern: String,
    /// The profile.
    pub profile: Profile,
    /// Character set rule.
    pub charset: CharsetRule,
    /// Delimiter rule.
    pub delimiter: DelimiterRule,
    /// Columns the header must have (profile's, then the rule's).
    pub required_columns: Vec<String>,
    /// Columns that must have a value in every row (from the profile).
    pub required_values: Vec<String>,
    /// The order the profile's specification gives the columns in, when it
    /// gives one (OneRoster); a different order is a warning.
    pub column_order: Option<&'static [&'static str]>,
    /// Largest size accepted, in bytes.
    pub max_size: Option<u64>,
    /// Problems with the name itself (a date suffix that is not a date, a
    /// name the profile does not know).
    pub name_problems: Vec<Problem>,
}

impl CheckPlan {
    /// The plan for `file_name` under `rule`.
    #[must_use]
    pub fn new(file_name: &str, rule: &FileRule) -> Self {
        let name = FileName::parse(file_name);
        let mut plan = Self {
            name_problems: name.problem().into_iter().collect(),
            file_name: name,
            rule_pattern: rule.pattern.to_string(),
            profile: rule.profile,
            charset: rule.charset,
            delimiter: rule.delimiter,
            required_columns: Vec::new(),
            required_values: Vec::new(),
            column_order: None,
            max_size: rule.max_size.map(|size| size.0),
        };
        let logical = plan.file_name.logical_name.clone();
        match rule.profile {
            Profile::Generic => {}
            Profile::OneRoster11 => {
                if logical.eq_ignore_ascii_case("manifest.csv") {
                    plan.add_required_columns(ONEROSTER_MANIFEST_COLUMNS.iter().copied());
                    plan.required_values = vec!["propertyName".into()];
                } else if let Some(file) = oneroster_file(&logical) {
                    plan.add_required_columns(file.columns.iter().copied());
                    plan.required_values =
                        file.required_values.iter().map(|c| c.to_string()).collect();
                    plan.column_order = Some(file.columns);
                } else {
                    let known: Vec<&str> = std::iter::once("manifest.csv")
                        .chain(ONEROSTER_11_FILES.iter().map(|file| file.file_name))
                        .collect();
                    plan.name_problems
                        .push(unknown_name_problem(&logical, rule.profile, &known));
                }
            }
            Profile::Clever => {
                if let Some(file) = clever_file(&logical) {
                    plan.add_required_columns(file.required_columns.iter().copied());
                } else {
                    let known: Vec<&str> = CLEVER_FILES.iter().map(|file| file.file_name).collect();
                    plan.name_problems
                        .push(unknown_name_problem(&logical, rule.profile, &known));
                }
            }
        }
        plan.add_required_columns(rule.required_columns.iter().map(String::as_str));
        plan
    }

    fn add_required_columns<'a>(&mut self, columns: impl IntoIterator<Item = &'a str>) {
        for column in columns {
            let column = column.trim();
            if !self
                .required_columns
                .iter()
                .any(|known| known.to_lowercase() == column.to_lowercase())
            {
                self.required_columns.push(column.to_string());
            }
        }
    }
}

fn unknown_name_problem(logical: &str, profile: Profile, known: &[&str]) -> Problem {
    Problem::new(
        ProblemKind::UnknownFileName,
        None,
        format!(
            "{logical} is not a {profile} file name; the names it knows are {}",
            known.join(", ")
        ),
        format!(
            "Name the file as {profile} requires (for example {}), or leave it out of the upload.",
            known.get(1).or(known.first()).copied().unwrap_or_default()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delimiter::Delimiter;

    const EXAMPLE: &str = r#"
[[rules]]
pattern = "students*.csv"
delimiter = ","
charset = "utf-8"
required_columns = ["Student_id", "School_id"]
max_size = "500 MB"

[[rules]]
pattern = "*.csv"

[[accounts.lincoln-usd.rules]]
pattern = "*.csv"
profile = "oneroster-1.1"
delimiter = "\t"
max_size = 1048576
"#;

    #[test]
    fn reads_the_documented_shape() {
        let rules = Rules::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(rules.rules.len(), 2);
        let first = &rules.rules[0];
        assert_eq!(first.delimiter, DelimiterRule::Fixed(Delimiter::Comma));
        assert_eq!(first.charset, CharsetRule::Utf8);
        assert_eq!(first.max_size, Some(ByteSize(500_000_000)));
        let lincoln = &rules.accounts["lincoln-usd"].rules[0];
        assert_eq!(lincoln.profile, Profile::OneRoster11);
        assert_eq!(lincoln.delimiter, DelimiterRule::Fixed(Delimiter::Tab));
        assert_eq!(lincoln.max_size, Some(ByteSize(1 << 20)));
    }

    #[test]
    fn account_rules_come_first_then_global_then_default() {
        let rules = Rules::from_toml_str(EXAMPLE).unwrap();
        let plan = rules.plan_for(Some("lincoln-usd"), "users_20261123.csv");
        assert_eq!(plan.profile, Profile::OneRoster11);
        assert_eq!(plan.file_name.logical_name, "users.csv");
        assert!(plan.required_columns.iter().any(|c| c == "givenName"));
        let plan = rules.plan_for(Some("other"), "Students_20261123.csv");
        assert_eq!(plan.rule_pattern, "students*.csv");
        assert_eq!(plan.required_columns, ["Student_id", "School_id"]);
        let plan = rules.plan_for(None, "teachers.csv");
        assert_eq!(plan.rule_pattern, "*.csv");
        let plan = rules.plan_for(None, "notes.txt");
        assert_eq!(plan.rule_pattern, "*");
        assert_eq!(plan.profile, Profile::Generic);
    }

    #[test]
    fn bad_rules_are_refused_with_the_key_named() {
        for (text, expected) in [
            (
                "[[rules]]\npattern = \"*.csv\"\ncharset = \"latin-9\"\n",
                "latin-9",
            ),
            (
                "[[rules]]\npattern = \"*.csv\"\ndelimiter = \":\"\n",
                "delimiter",
            ),
            ("[[rules]]\npattern = \"in/*.csv\"\n", "path separator"),
            (
                "[[rules]]\npattern = \"*.csv\"\nmax_size = \"5 parsecs\"\n",
                "unknown unit",
            ),
            (
                "[[rules]]\npattern = \"*.csv\"\nprofile = \"oneroster-1.2\"\n",
                "profile",
            ),
            (
                "[[rules]]\npattern = \"*.csv\"\nrequired_colums = [\"a\"]\n",
                "required_colums",
            ),
            ("[[rule]]\npattern = \"*.csv\"\n", "rule"),
            ("[[accounts.x.rule]]\npattern = \"*.csv\"\n", "rule"),
        ] {
            let error = Rules::from_toml_str(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn glob_patterns() {
        let matches = |pattern: &str, name: &str| {
            FilePattern::try_from(pattern.to_string())
                .unwrap()
                .matches(name)
        };
        assert!(matches("*.csv", "students.csv"));
        assert!(matches("*.csv", "STUDENTS.CSV"));
        assert!(matches("students*.csv", "students_20261123.csv"));
        assert!(!matches("students*.csv", "teachers.csv"));
        assert!(matches("?eachers.csv", "teachers.csv"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(!matches("*.csv", "students.csv.filepart"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("512").unwrap(), 512);
        assert_eq!(parse_byte_size("1.5 KB").unwrap(), 1500);
        assert_eq!(parse_byte_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_byte_size("MB").is_err());
    }

    #[test]
    fn profile_names_unknown_files() {
        let rule = FileRule {
            profile: Profile::Clever,
            ..FileRule::default()
        };
        let plan = CheckPlan::new("admins.csv", &rule);
        assert_eq!(plan.name_problems[0].kind, ProblemKind::UnknownFileName);
        let plan = CheckPlan::new("students_20261123.csv", &rule);
        assert!(plan.name_problems.is_empty());
        assert_eq!(
            plan.required_columns,
            ["School_id", "Student_id", "Last_name", "First_name"]
        );
    }
}
