
set edit:completion:arg-completer[vc] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) VC_COMPLETE="elvish" vc -- $@words) | to-lines
}

