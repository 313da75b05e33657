complete --keep-order --exclusive --command vc --arguments "(COMPLETE=fish vc -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
