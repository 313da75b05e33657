complete --keep-order --exclusive --command vc --arguments "(VC_COMPLETE=fish vc -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
