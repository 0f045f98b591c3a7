"""Value decomposition (VDN, QMIX): recurrent agent utilities, episode replay, mixers."""
