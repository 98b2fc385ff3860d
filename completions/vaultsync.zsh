#compdef vaultsync

_vaultsync_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _VAULTSYNC_COMPLETE=complete_zsh vaultsync)
}

compdef _vaultsync_completion vaultsync
