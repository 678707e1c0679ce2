# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_davsync_global_optspecs
    string join \n c/config= v/verbose q/quiet h/help V/version
end

function __fish_davsync_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_davsync_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_davsync_using_subcommand
    set -l cmd (__fish_davsync_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c davsync -n "__fish_davsync_needs_command" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_needs_command" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_needs_command" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_needs_command" -s V -l version -d 'Print version'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "sync" -d 'Sync pairs (all pairs when none is named)'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "discover" -d 'Show the collections on both sides of pairs and how they pair up'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "check" -d 'Check the config, the connections and the collections of pairs, writing nothing'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "status" -d 'Show collections, item counts, last clean sync, last attempt, open conflicts and failed items'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "repair" -d 'Give items without a UID a new UID and split UIDs used by several items'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "auth" -d 'Authorize davsync to use a Google account (OAuth2)'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "import-vdirsyncer" -d 'Write a davsync config equivalent to a vdirsyncer config'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "generate" -d 'Write man pages and shell completions generated from the CLI definition'
complete -c davsync -n "__fish_davsync_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c davsync -n "__fish_davsync_using_subcommand sync" -l force-delete -d 'Also sync PAIR[/COLLECTION], propagating deletions from a side that lists no items at all (or forgetting the items when both sides list none); applies to the named pairs or collections only, repeat it for each' -r
complete -c davsync -n "__fish_davsync_using_subcommand sync" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand sync" -l dry-run -d 'Print what would be done, change nothing'
complete -c davsync -n "__fish_davsync_using_subcommand sync" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand sync" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand discover" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand discover" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand discover" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand discover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand check" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand check" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand check" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand status" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand status" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand status" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand repair" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand repair" -l dry-run -d 'Print what would be changed, change nothing'
complete -c davsync -n "__fish_davsync_using_subcommand repair" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand repair" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand repair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand auth" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand auth" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand auth" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand auth" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand import-vdirsyncer" -s o -l output -d 'Write the davsync config to this file (never replaced: an existing file is an error) instead of stdout' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand import-vdirsyncer" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand import-vdirsyncer" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand import-vdirsyncer" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand import-vdirsyncer" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c davsync -n "__fish_davsync_using_subcommand generate" -l man -d 'Directory for the man pages' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand generate" -l completions -d 'Directory for the shell completions' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand generate" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]' -r -F
complete -c davsync -n "__fish_davsync_using_subcommand generate" -s v -l verbose -d 'Say more: every action applied (repeatable)'
complete -c davsync -n "__fish_davsync_using_subcommand generate" -s q -l quiet -d 'Say less: only problems'
complete -c davsync -n "__fish_davsync_using_subcommand generate" -s h -l help -d 'Print help'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "sync" -d 'Sync pairs (all pairs when none is named)'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "discover" -d 'Show the collections on both sides of pairs and how they pair up'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "check" -d 'Check the config, the connections and the collections of pairs, writing nothing'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "status" -d 'Show collections, item counts, last clean sync, last attempt, open conflicts and failed items'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "repair" -d 'Give items without a UID a new UID and split UIDs used by several items'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "auth" -d 'Authorize davsync to use a Google account (OAuth2)'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "import-vdirsyncer" -d 'Write a davsync config equivalent to a vdirsyncer config'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "generate" -d 'Write man pages and shell completions generated from the CLI definition'
complete -c davsync -n "__fish_davsync_using_subcommand help; and not __fish_seen_subcommand_from sync discover check status repair auth import-vdirsyncer generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
