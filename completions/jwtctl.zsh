
#compdef jwtctl

_jwtctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _JWTCTL_COMPLETE=complete_zsh jwtctl)
}

compdef _jwtctl_completion jwtctl

