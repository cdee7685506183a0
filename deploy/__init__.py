"""Running yujing for real: settings, the local stack, topics and the command line."""
