//! Built-in profiles: what a generic CSV, a OneRoster 1.1 CSV export and a
//! Clever SFTP upload must contain, file by file.
//!
//! The tables here are data, not logic, so a reviewer can hold them against
//! the specifications line by line:
//! - OneRoster 1.1 CSV ("1EdTech OneRoster: CSV Tables", v1.1): every file's
//!   header must carry *all* its columns, in the order given (values may be
//!   empty unless marked required); manifest.csv lists which files are present.
//! - Clever ("Clever SFTP Instructions"): five files are required (schools,
//!   students, teachers, sections, enrollments), staff.csv is optional; column
//!   order does not matter and only the required columns must be present.
//!
//! Column names are compared case-insensitively and trimmed, as every check does.
//! Nothing here reads a file, and no table may drift from its specification:
//! what these tables say is what districts are told to fix.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which built-in profile a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Profile {
    /// Any CSV: only the rule's own settings and required columns.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// OneRoster 1.1 CSV: per-file columns from the spec, and the set checked
    /// against manifest.csv.
    #[serde(rename = "oneroster-1.1")]
    OneRoster11,
    /// Clever SFTP CSV: per-file required columns, and the five required files.
    #[serde(rename = "clever")]
    Clever,
}

impl Profile {
    /// The name used in configuration: `generic`, `oneroster-1.1`, `clever`.
    #[must_use]
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::OneRoster11 => "oneroster-1.1",
            Self::Clever => "clever",
        }
    }

    /// What a person calls it.
    #[must_use]
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Generic => "CSV",
            Self::OneRoster11 => "OneRoster 1.1 CSV",
            Self::Clever => "Clever CSV",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// One file of a OneRoster 1.1 CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneRosterFile {
    /// File name, e.g. `users.csv`.
    pub file_name: &'static str,
    /// Its key in manifest.csv, e.g. `file.users`.
    pub manifest_key: &'static str,
    /// Every column, in the spec's order; all must be in the header.
    pub columns: &'static [&'static str],
    /// Columns that must have a value in every row.
    pub required_values: &'static [&'static str],
}

/// manifest.csv's columns.
pub const ONEROSTER_MANIFEST_COLUMNS: &[&str] = &["propertyName", "value"];

/// The data files of OneRoster 1.1 CSV (manifest.csv is the control file).
pub const ONEROSTER_11_FILES: &[OneRosterFile] = &[
    OneRosterFile {
        file_name: "academicSessions.csv",
        manifest_key: "file.academicSessions",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "type",
            "startDate",
            "endDate",
            "parentSourcedId",
            "schoolYear",
        ],
        required_values: &[
            "sourcedId",
            "title",
            "type",
            "startDate",
            "endDate",
            "schoolYear",
        ],
    },
    OneRosterFile {
        file_name: "categories.csv",
        manifest_key: "file.categories",
        columns: &["sourcedId", "status", "dateLastModified", "title"],
        required_values: &["sourcedId", "title"],
    },
    OneRosterFile {
        file_name: "classes.csv",
        manifest_key: "file.classes",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "grades",
            "courseSourcedId",
            "classCode",
            "classType",
            "location",
            "schoolSourcedId",
            "termSourcedIds",
            "subjects",
            "subjectCodes",
            "periods",
        ],
        required_values: &[
            "sourcedId",
            "title",
            "courseSourcedId",
            "classType",
            "schoolSourcedId",
            "termSourcedIds",
        ],
    },
    OneRosterFile {
        file_name: "classResources.csv",
        manifest_key: "file.classResources",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "classSourcedId",
            "resourceSourcedId",
        ],
        required_values: &["sourcedId", "classSourcedId", "resourceSourcedId"],
    },
    OneRosterFile {
        file_name: "courses.csv",
        manifest_key: "file.courses",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "schoolYearSourcedId",
            "title",
            "courseCode",
            "grades",
            "orgSourcedId",
            "subjects",
            "subjectCodes",
        ],
        required_values: &["sourcedId", "title", "orgSourcedId"],
    },
    OneRosterFile {
        file_name: "courseResources.csv",
        manifest_key: "file.courseResources",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "courseSourcedId",
            "resourceSourcedId",
        ],
        required_values: &["sourcedId", "courseSourcedId", "resourceSourcedId"],
    },
    OneRosterFile {
        file_name: "demographics.csv",
        manifest_key: "file.demographics",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "birthDate",
            "sex",
            "americanIndianOrAlaskaNative",
            "asian",
            "blackOrAfricanAmerican",
            "nativeHawaiianOrOtherPacificIslander",
            "white",
            "demographicRaceTwoOrMoreRaces",
            "hispanicOrLatinoEthnicity",
            "countryOfBirthCode",
            "stateOfBirthAbbreviation",
            "cityOfBirth",
            "publicSchoolResidenceStatus",
        ],
        required_values: &["sourcedId"],
    },
    OneRosterFile {
        file_name: "enrollments.csv",
        manifest_key: "file.enrollments",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "classSourcedId",
            "schoolSourcedId",
            "userSourcedId",
            "role",
            "primary",
            "beginDate",
            "endDate",
        ],
        required_values: &[
            "sourcedId",
            "classSourcedId",
            "schoolSourcedId",
            "userSourcedId",
            "role",
        ],
    },
    OneRosterFile {
        file_name: "lineItems.csv",
        manifest_key: "file.lineItems",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "description",
            "assignDate",
            "dueDate",
            "classSourcedId",
            "categorySourcedId",
            "gradingPeriodSourcedId",
            "resultValueMin",
            "resultValueMax",
        ],
        required_values: &[
            "sourcedId",
            "title",
            "assignDate",
            "dueDate",
            "classSourcedId",
            "categorySourcedId",
            "gradingPeriodSourcedId",
            "resultValueMin",
            "resultValueMax",
        ],
    },
    OneRosterFile {
        file_name: "orgs.csv",
        manifest_key: "file.orgs",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "name",
            "type",
            "identifier",
            "parentSourcedId",
        ],
        required_values: &["sourcedId", "name", "type"],
    },
    OneRosterFile {
        file_name: "resources.csv",
        manifest_key: "file.resources",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "vendorResourceId",
            "title",
            "roles",
            "importance",
            "vendorId",
            "applicationId",
        ],
        required_values: &["sourcedId", "vendorResourceId"],
    },
    OneRosterFile {
        file_name: "results.csv",
        manifest_key: "file.results",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "lineItemSourcedId",
            "studentSourcedId",
            "scoreStatus",
            "score",
            "scoreDate",
            "comment",
        ],
        required_values: &[
            "sourcedId",
            "lineItemSourcedId",
            "studentSourcedId",
            "scoreStatus",
            "score",
            "scoreDate",
        ],
    },
    OneRosterFile {
        file_name: "users.csv",
        manifest_key: "file.users",
        columns: &[
            "sourcedId",
            "status",
            "dateLastModified",
            "enabledUser",
            "orgSourcedIds",
            "role",
            "username",
            "userIds",
            "givenName",
            "familyName",
            "middleName",
            "identifier",
            "email",
            "sms",
            "phone",
            "agentSourcedIds",
            "grades",
            "password",
        ],
        required_values: &[
            "sourcedId",
            "enabledUser",
            "orgSourcedIds",
            "role",
            "username",
            "givenName",
            "familyName",
        ],
    },
];

/// The OneRoster 1.1 file called `logical_name` (case-insensitive).
#[must_use]
pub fn oneroster_file(logical_name: &str) -> Option<&'static OneRosterFile> {
    ONEROSTER_11_FILES
        .iter()
        .find(|file| file.file_name.eq_ignore_ascii_case(logical_name))
}

/// One file of a Clever SFTP upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleverFile {
    /// File name, e.g. `students.csv`.
    pub file_name: &'static str,
    /// Whether every upload must include it.
    pub required: bool,
    /// Columns the header must have (others are optional, in any order).
    pub required_columns: &'static [&'static str],
}

/// The files of a Clever SFTP upload.
pub const CLEVER_FILES: &[CleverFile] = &[
    CleverFile {
        file_name: "schools.csv",
        required: true,
        required_columns: &["School_id", "School_name", "School_number"],
    },
    CleverFile {
        file_name: "students.csv",
        required: true,
        required_columns: &["School_id", "Student_id", "Last_name", "First_name"],
    },
    CleverFile {
        file_name: "teachers.csv",
        required: true,
        required_columns: &["School_id", "Teacher_id", "Last_name", "First_name"],
    },
    CleverFile {
        file_name: "sections.csv",
        required: true,
        required_columns: &["School_id", "Section_id", "Teacher_id"],
    },
    CleverFile {
        file_name: "enrollments.csv",
        required: true,
        required_columns: &["School_id", "Section_id", "Student_id"],
    },
    CleverFile {
        file_name: "staff.csv",
        required: false,
        required_columns: &[
            "School_id",
            "Staff_id",
            "Staff_email",
            "First_name",
            "Last_name",
        ],
    },
];

/// The Clever file called `logical_name` (case-insensitive).
#[must_use]
pub fn clever_file(logical_name: &str) -> Option<&'static CleverFile> {
    CLEVER_FILES
        .iter()
        .find(|file| file.file_name.eq_ignore_ascii_case(logical_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneroster_tables_are_consistent() {
        assert_eq!(ONEROSTER_11_FILES.len(), 13);
        for file in ONEROSTER_11_FILES {
            let base = file.file_name.strip_suffix(".csv").unwrap();
            assert_eq!(file.manifest_key, format!("file.{base}"));
            assert_eq!(
                file.columns[..3],
                ["sourcedId", "status", "dateLastModified"]
            );
            for required in file.required_values {
                assert!(
                    file.columns.contains(required),
                    "{required} in {}",
                    file.file_name
                );
            }
        }
        let orgs = oneroster_file("ORGS.csv").unwrap();
        assert_eq!(
            orgs.columns,
            [
                "sourcedId",
                "status",
                "dateLastModified",
                "name",
                "type",
                "identifier",
                "parentSourcedId"
            ]
        );
    }

    #[test]
    fn clever_has_five_required_files_and_optional_staff() {
        let required: Vec<_> = CLEVER_FILES
            .iter()
            .filter(|file| file.required)
            .map(|file| file.file_name)
            .collect();
        assert_eq!(
            required,
            [
                "schools.csv",
                "students.csv",
                "teachers.csv",
                "sections.csv",
                "enrollments.csv"
            ]
        );
        assert!(!clever_file("staff.csv").unwrap().required);
    }
}
