"""xlsr_live.streaming"""
