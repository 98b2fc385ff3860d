"""Object stores: where a repository's objects live (directory, memory, S3, WebDAV, SFTP)."""
