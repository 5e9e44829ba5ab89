-- The reel job's schedule, written as what it means: daily at 00:00 in India (Asia/Kolkata), now
-- that the engine reads schedules in a job's time zone (20261204090000_jobs_scheduling.sql). It
-- fired at the same instant before ('30 18 * * *' UTC); catch_up 'once' (the default for a daily
-- job) runs it once when the database comes back after missing a midnight.
select jobs.set_schedule('instagram-reel-urls', '0 0 * * *', 'Asia/Kolkata');
update jobs.job
   set description = 'Refresh the signed media/thumbnail URLs of stored Instagram reels (daily at 00:00 IST); '
                     || split_part(description, '; ', 2)
 where name = 'instagram-reel-urls' and description like '%; %';
