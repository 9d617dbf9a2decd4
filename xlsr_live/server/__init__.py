"""xlsr_live.server"""
