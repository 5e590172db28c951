//! BuildKit's build-check rules: names, descriptions and documentation URLs as BuildKit
//! (v0.32, `frontend/dockerfile/linter/ruleset.go`) gives them, so a warning reads the
//! same from `hoist` as from `docker build --check`.

/// One build-check rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (`StageNameCasing`), as `# check=skip=` takes it.
    pub name: &'static str,
    /// What the rule is about.
    pub description: &'static str,
    /// The rule's documentation.
    pub url: &'static str,
    /// Experimental rules run only when `# check=experimental=NAME|all` asks for them.
    pub experimental: bool,
}

macro_rules! rules {
    ($($id:ident $name:literal $slug:literal $exp:literal $desc:literal;)*) => {
        $(
            #[doc = $desc]
            pub const $id: Rule = Rule {
                name: $name,
                description: $desc,
                url: concat!("https://docs.docker.com/go/dockerfile/rule/", $slug, "/"),
                experimental: $exp,
            };
        )*
        /// Every rule hoist checks, in BuildKit's order.
        pub const ALL: &[Rule] = &[$($id),*];
    };
}

rules! {
    STAGE_NAME_CASING "StageNameCasing" "stage-name-casing" false
        "Stage names should be lowercase";
    FROM_AS_CASING "FromAsCasing" "from-as-casing" false
        "The 'as' keyword should match the case of the 'from' keyword";
    CONSISTENT_INSTRUCTION_CASING "ConsistentInstructionCasing" "consistent-instruction-casing" false
        "All commands within the Dockerfile should use the same casing (either upper or lower)";
    DUPLICATE_STAGE_NAME "DuplicateStageName" "duplicate-stage-name" false
        "Stage names should be unique";
    RESERVED_STAGE_NAME "ReservedStageName" "reserved-stage-name" false
        "Reserved words should not be used as stage names";
    JSON_ARGS_RECOMMENDED "JSONArgsRecommended" "json-args-recommended" false
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals";
    MAINTAINER_DEPRECATED "MaintainerDeprecated" "maintainer-deprecated" false
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author";
    UNDEFINED_ARG_IN_FROM "UndefinedArgInFrom" "undefined-arg-in-from" false
        "FROM command must use declared ARGs";
    WORKDIR_RELATIVE_PATH "WorkdirRelativePath" "workdir-relative-path" false
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes";
    UNDEFINED_VAR "UndefinedVar" "undefined-var" false
        "Variables should be defined before their use";
    MULTIPLE_INSTRUCTIONS_DISALLOWED "MultipleInstructionsDisallowed" "multiple-instructions-disallowed" false
        "Multiple instructions of the same type should not be used in the same stage";
    LEGACY_KEY_VALUE_FORMAT "LegacyKeyValueFormat" "legacy-key-value-format" false
        "Legacy key/value format with whitespace separator should not be used";
    REDUNDANT_TARGET_PLATFORM "RedundantTargetPlatform" "redundant-target-platform" false
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior";
    SECRETS_USED_IN_ARG_OR_ENV "SecretsUsedInArgOrEnv" "secrets-used-in-arg-or-env" false
        "Sensitive data should not be used in the ARG or ENV commands";
    INVALID_DEFAULT_ARG_IN_FROM "InvalidDefaultArgInFrom" "invalid-default-arg-in-from" false
        "Default value for global ARG results in an empty or invalid base image name";
    FROM_PLATFORM_FLAG_CONST_DISALLOWED "FromPlatformFlagConstDisallowed" "from-platform-flag-const-disallowed" false
        "FROM --platform flag should not use a constant value";
    COPY_IGNORED_FILE "CopyIgnoredFile" "copy-ignored-file" false
        "Attempting to Copy file that is excluded by .dockerignore";
    EXPOSE_PROTO_CASING "ExposeProtoCasing" "expose-proto-casing" false
        "Protocol in EXPOSE instruction should be lowercase";
    EXPOSE_INVALID_FORMAT "ExposeInvalidFormat" "expose-invalid-format" false
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release";
}

/// The rule named `name`, if hoist knows it.
pub fn by_name(name: &str) -> Option<&'static Rule> {
    ALL.iter().find(|r| r.name == name)
}
