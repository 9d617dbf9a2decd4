"""xlsr_live.model"""
