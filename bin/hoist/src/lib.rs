//! The hoist command-line interface, as a library so it can be tested.
//!
//! `main` parses the flags with clap, sets up `tracing` logging, runs one subcommand
//! (one module per subcommand under [`commands`]) and turns the outcome into an exit
//! code: 0 on success, 1 on error (printed with its causes), 2 on usage errors (clap).
//! A closed standard output (`hoist … | head`) counts as success.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod commands;

/// hoist: build, move and promote container images without a daemon.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log level filter (error, warn, info, debug, trace), or a tracing filter directive.
    #[arg(long, global = true, env = "HOIST_LOG", default_value = "warn")]
    pub log: String,

    /// Bound on a layer's uncompressed size (e.g. 8G, 512M): unpacking, indexing or
    /// applying a layer that expands past it fails with an error naming the layer.
    /// Default 32G.
    #[arg(long, global = true, env = "HOIST_MAX_LAYER_SIZE", value_name = "SIZE",
          value_parser = parse_size)]
    pub max_layer_size: Option<u64>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// hoist's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<commands::build::BuildArgs>),
    /// Assemble an image from a base and files, without a Dockerfile (ko/jib style).
    Assemble(Box<commands::assemble::AssembleArgs>),
    /// Print the Dockerfile `hoist build` would generate for an app directory.
    Plan(commands::plan::PlanArgs),
    /// Build several images from a build file (hoist.build.toml), each with its own
    /// Dockerfile, context, args, tags and outputs.
    Bake(commands::bake::BakeArgs),
    /// Check or parse a Dockerfile.
    #[command(subcommand)]
    Dockerfile(commands::dockerfile::DockerfileCommand),
    /// Show an image's manifest, config, layers and history.
    Inspect(commands::inspect::InspectArgs),
    /// Pull an image from a registry into the cache (and optionally write it out).
    Pull(commands::transfer::PullArgs),
    /// Push an image (from any local format or registry) to registries.
    Push(commands::transfer::PushArgs),
    /// Copy an image between any transports, by digest (the digest never changes).
    Copy(commands::transfer::CopyArgs),
    /// Log in to a registry (checks the credentials, then stores them).
    Login(commands::transfer::LoginArgs),
    /// Log out of a registry.
    Logout(commands::transfer::LogoutArgs),
    /// Add tags to an image in a registry without moving any blob.
    Tag(commands::tags::TagArgs),
    /// Remove one tag, never the other tags on the same digest.
    Untag(commands::tags::UntagArgs),
    /// List a repository's tags with their digests.
    Tags(commands::tags::TagsArgs),
    /// Promote an image (by digest) to an environment, recording the promotion.
    Promote(commands::promote::PromoteArgs),
    /// Attach a mark (tested, signed-off, …) to an image by digest.
    Mark(commands::mark::MarkArgs),
    /// Show which digest each environment of a repository runs.
    Status(commands::promote::StatusArgs),
    /// List past promotions of an environment.
    History(commands::promote::HistoryArgs),
    /// Point an environment back at its previous image.
    Rollback(commands::promote::RollbackArgs),
    /// Apply a retention policy (dry run unless --apply).
    Prune(commands::prune::PruneArgs),
    /// Make signing keys (ECDSA P-256, PEM).
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    /// Sign an image (cosign's simple signing, verifiable by cosign, skopeo, podman).
    Sign(commands::sign::SignArgs),
    /// Verify an image's signatures with a public key.
    Verify(commands::verify::VerifyArgs),
    /// Show or bound the build cache.
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
    /// Concourse task mode: oci-build-task's params from the environment, outputs in
    /// image/ (no daemon, no privileges).
    Task(commands::task::TaskArgs),
}

fn parse_size(s: &str) -> Result<u64, String> {
    match hoist_image::layer::parse_size(s)? {
        0 => Err("the bound must be positive".into()),
        n => Ok(n),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Run the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Task(_)) && commands::task::debug_requested() {
        // oci-build-task's DEBUG param.
        init_logging("debug,hyper=info,hyper_util=info,reqwest=info,rustls=info,h2=info");
    } else {
        init_logging(&cli.log);
    }
    if let Some(n) = cli.max_layer_size {
        hoist_image::layer::set_default_max_layer_size(n);
    }
    // Commands that write to registries stop at once on Ctrl-C: a push must not go
    // on to tag what it had started (exit 130, nothing tagged; the registry drops
    // the unreferenced uploads). Builds stop at the next step and clean up first.
    let immediate = matches!(
        cli.command,
        Command::Push(_)
            | Command::Copy(_)
            | Command::Pull(_)
            | Command::Tag(_)
            | Command::Untag(_)
            | Command::Promote(_)
            | Command::Rollback(_)
            | Command::Prune(_)
    );
    if let Err(e) = ctrlc::set_handler(move || {
        if immediate || hoist_engine::interrupted() {
            eprintln!("interrupted");
            std::process::exit(130);
        }
        eprintln!("interrupted: stopping after cleanup (press Ctrl-C again to quit now)");
        hoist_engine::interrupt();
        // A build's push (--push, type=image,push=true) writes no further blob or tag.
        hoist_registry::interrupt();
    }) {
        tracing::warn!("could not install the Ctrl-C handler: {e}");
    }
    let result = match cli.command {
        Command::Build(a) => commands::build::run(*a),
        Command::Assemble(a) => commands::assemble::run(*a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Bake(a) => commands::bake::run(a),
        Command::Dockerfile(c) => commands::dockerfile::run(c),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Pull(a) => commands::transfer::pull(a),
        Command::Push(a) => commands::transfer::push(a),
        Command::Copy(a) => commands::transfer::copy(a),
        Command::Login(a) => commands::transfer::login(a),
        Command::Logout(a) => commands::transfer::logout(a),
        Command::Tag(a) => commands::tags::tag(a),
        Command::Untag(a) => commands::tags::untag(a),
        Command::Tags(a) => commands::tags::tags(a),
        Command::Promote(a) => commands::promote::promote(a),
        Command::Mark(a) => commands::mark::run(a),
        Command::Status(a) => commands::promote::status(a),
        Command::History(a) => commands::promote::history(a),
        Command::Rollback(a) => commands::promote::rollback(a),
        Command::Prune(a) => commands::prune::run(a),
        Command::Key(c) => commands::key::run(c),
        Command::Sign(a) => commands::sign::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Task(a) => commands::task::run(a),
        Command::Cache(c) => commands::cache::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if hoist_engine::interrupted() {
                eprintln!("error: {e:#}");
                return ExitCode::from(130);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
