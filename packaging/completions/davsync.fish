complete --keep-order --exclusive --command davsync --arguments "(COMPLETE=fish davsync -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
